"""Razorpay's webhook: the signature over the raw body, each event once, events applied in
their own order, and each event type's effect on the subscription and the quotas."""

import logging

import pytest
from rest_framework.test import APIClient

from billing.models import Subscription, SubscriptionStatus, WebhookEvent
from raptorflow.models import AuditLog
from tests.billing.conftest import event_body, sign
from tests.billing_fixtures import KEY_SECRET, TEAM_PLAN_ID, subscription_entity

pytestmark = pytest.mark.django_db

WEBHOOK = "/api/billing/webhook"
T0 = 1_790_000_000
PERIOD_START, PERIOD_END = T0, T0 + 30 * 86_400


def subscription_event(event, *, at, status, **entity):
    return event_body(event, created_at=at, subscription=subscription_entity(status=status, **entity))


def activated(at=T0 + 100, **entity):
    return subscription_event(
        "subscription.activated",
        at=at,
        status="active",
        current_start=PERIOD_START,
        current_end=PERIOD_END,
        paid_count=1,
        **entity,
    )


# --- signature --------------------------------------------------------------------------


def test_a_signed_event_is_applied(deliver, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)

    response = deliver(activated(), event_id="evt_A")

    assert response.status_code == 200
    assert response.json() == {"status": "applied"}
    subscription.refresh_from_db()
    assert subscription.status == "active"
    event = WebhookEvent.objects.get(event_id="evt_A")
    assert (event.event, event.outcome, event.razorpay_subscription_id) == (
        "subscription.activated",
        "applied",
        "sub_Pro0000000001",
    )
    assert event.payload["event"] == "subscription.activated"


@pytest.mark.parametrize(
    "signature",
    ["", "0" * 64, sign(b"another body"), sign(b"x", secret="not-the-secret"), "é" * 64],
    ids=["missing", "zeros", "other-body", "other-secret", "non-ascii"],
)
def test_a_bad_signature_is_400_and_changes_nothing(deliver, make_subscription, signature):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)
    body = activated()

    response = deliver(body, signature=signature)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    subscription.refresh_from_db()
    assert subscription.status == "created"
    assert not WebhookEvent.objects.exists()


def test_missing_signature_header_is_400(anon_client, razorpay_keys, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)

    response = anon_client.generic("POST", WEBHOOK, activated(), content_type="application/json")

    assert response.status_code == 400
    subscription.refresh_from_db()
    assert subscription.status == "created"


def test_a_tampered_body_is_400_and_changes_nothing(deliver, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)
    genuine = subscription_event("subscription.charged", at=T0, status="active")
    tampered = genuine.replace(b'"status": "active"', b'"status": "cancelled"')
    assert tampered != genuine

    response = deliver(tampered, signature=sign(genuine))

    assert response.status_code == 400
    subscription.refresh_from_db()
    assert subscription.status == "active"
    assert not WebhookEvent.objects.exists()


def test_the_signature_covers_the_raw_bytes_not_reformatted_json(deliver, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)
    body = activated().replace(b", ", b",  ")  # same JSON, different bytes, signed as sent

    assert deliver(body).status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == "active"


def test_webhook_without_a_configured_secret_is_503(anon_client, no_razorpay_keys, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)
    body = activated()

    response = anon_client.generic(
        "POST", WEBHOOK, body, content_type="application/json", headers={"X-Razorpay-Signature": sign(body)}
    )

    assert response.status_code == 503
    assert "RAZORPAY_WEBHOOK_SECRET" in response.json()["error"]["message"]
    subscription.refresh_from_db()
    assert subscription.status == "created"


def test_a_signed_body_that_is_not_json_is_400(deliver):
    response = deliver(b"not json")

    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_webhook_needs_no_token_and_no_csrf_token(razorpay_keys, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)
    body = activated()
    client = APIClient(enforce_csrf_checks=True)

    response = client.generic(
        "POST", WEBHOOK, body, content_type="application/json", headers={"X-Razorpay-Signature": sign(body)}
    )

    assert response.status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == "active"


# --- each event once ---------------------------------------------------------------------


def test_the_same_event_twice_changes_things_once(deliver, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)
    body = activated()

    first = deliver(body, event_id="evt_once")
    second = deliver(body, event_id="evt_once")

    assert first.json() == {"status": "applied"}
    assert (second.status_code, second.json()) == (200, {"status": "duplicate"})
    assert WebhookEvent.objects.filter(event_id="evt_once").count() == 1
    assert AuditLog.objects.filter(action="billing.subscription_changed").count() == 1
    subscription.refresh_from_db()
    assert subscription.status == "active"


def test_a_replayed_event_cannot_undo_a_later_one(deliver, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)
    activation = activated(at=T0 + 100)
    deliver(activation, event_id="evt_act")
    deliver(subscription_event("subscription.halted", at=T0 + 500, status="halted"), event_id="evt_halt")

    replay = deliver(activation, event_id="evt_act")

    assert replay.json() == {"status": "duplicate"}
    subscription.refresh_from_db()
    assert subscription.status == "halted"


def test_without_an_event_id_header_a_verbatim_replay_is_still_recognised(
    anon_client, razorpay_keys, make_subscription
):
    make_subscription(status=SubscriptionStatus.CREATED)
    body = activated()
    headers = {"X-Razorpay-Signature": sign(body)}

    first = anon_client.generic("POST", WEBHOOK, body, content_type="application/json", headers=headers)
    second = anon_client.generic("POST", WEBHOOK, body, content_type="application/json", headers=headers)

    assert (first.json()["status"], second.json()["status"]) == ("applied", "duplicate")
    assert WebhookEvent.objects.count() == 1


# --- order -------------------------------------------------------------------------------


def test_an_older_event_arriving_late_never_moves_a_subscription_back(deliver, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)
    deliver(subscription_event("subscription.cancelled", at=T0 + 900, status="cancelled", ended_at=T0 + 900))

    late = deliver(activated(at=T0 + 100))

    assert late.json() == {"status": "stale"}
    subscription.refresh_from_db()
    assert subscription.status == "cancelled"
    assert subscription.ended_at is not None


def test_a_late_pending_does_not_undo_a_newer_charge(deliver, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)
    deliver(
        subscription_event(
            "subscription.charged", at=T0 + 200, status="active", current_start=T0, current_end=PERIOD_END, paid_count=2
        )
    )

    assert deliver(subscription_event("subscription.pending", at=T0 + 150, status="pending")).json() == {
        "status": "stale"
    }

    subscription.refresh_from_db()
    assert (subscription.status, subscription.paid_count) == ("active", 2)


def test_events_in_order_each_apply(deliver, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)
    sequence = [
        ("subscription.authenticated", T0 + 10, "authenticated"),
        ("subscription.activated", T0 + 20, "active"),
        ("subscription.pending", T0 + 30, "pending"),
        ("subscription.halted", T0 + 40, "halted"),
        ("subscription.activated", T0 + 50, "active"),
        ("subscription.cancelled", T0 + 60, "cancelled"),
    ]
    seen = []
    for event, at, status in sequence:
        assert deliver(subscription_event(event, at=at, status=status)).json() == {"status": "applied"}
        subscription.refresh_from_db()
        seen.append(subscription.status)

    assert seen == [status for _, _, status in sequence]


def test_a_final_status_is_never_left_even_by_a_newer_event(deliver, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)
    deliver(subscription_event("subscription.completed", at=T0 + 100, status="completed"))

    deliver(subscription_event("subscription.activated", at=T0 + 200, status="active"))

    subscription.refresh_from_db()
    assert subscription.status == "completed"


def test_same_second_events_settle_on_the_later_stage(deliver, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)
    deliver(subscription_event("subscription.activated", at=T0, status="active"))

    deliver(subscription_event("subscription.authenticated", at=T0, status="authenticated"))

    subscription.refresh_from_db()
    assert subscription.status == "active"


# --- each event type's effect ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "before", "status"),
    [
        ("subscription.authenticated", "created", "authenticated"),
        ("subscription.activated", "authenticated", "active"),
        ("subscription.charged", "active", "active"),
        ("subscription.pending", "active", "pending"),
        ("subscription.halted", "pending", "halted"),
        ("subscription.cancelled", "active", "cancelled"),
        ("subscription.completed", "active", "completed"),
    ],
)
def test_each_subscription_event_sets_razorpays_status(deliver, make_subscription, event, before, status):
    subscription = make_subscription(status=before)

    response = deliver(subscription_event(event, at=T0, status=status))

    assert response.json() == {"status": "applied"}
    subscription.refresh_from_db()
    assert subscription.status == status
    assert subscription.last_event_at.timestamp() == T0


def test_charged_moves_the_billing_period_and_the_usage_period(deliver, owner_client, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)
    now = int(subscription.created_at.timestamp())
    start, end = now - 86_400, now + 29 * 86_400

    deliver(
        subscription_event(
            "subscription.charged",
            at=now,
            status="active",
            current_start=start,
            current_end=end,
            charge_at=end,
            paid_count=3,
        )
    )

    subscription.refresh_from_db()
    assert subscription.paid_count == 3
    assert (subscription.current_start.timestamp(), subscription.current_end.timestamp()) == (start, end)
    usage = owner_client.get("/api/billing/usage").json()
    assert usage["plan"] == "pro"
    assert usage["messages"]["limit"] == 10_000
    assert usage["resets_at"] == subscription.current_end.isoformat().replace("+00:00", "Z")


def test_updated_switches_the_plan(deliver, make_subscription, team_plan, owner_client):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)

    deliver(subscription_event("subscription.updated", at=T0, status="active", plan_id=TEAM_PLAN_ID))

    subscription.refresh_from_db()
    assert subscription.plan == team_plan
    assert owner_client.get("/api/billing/subscription").json()["plan"]["code"] == "team"
    entry = AuditLog.objects.get(action="billing.subscription_changed")
    assert entry.details["plan"] == "team"


def test_halted_puts_the_organization_back_on_free_quotas(deliver, make_subscription, owner_client):
    make_subscription(status=SubscriptionStatus.PENDING)
    assert owner_client.get("/api/billing/usage").json()["plan"] == "pro"

    deliver(subscription_event("subscription.halted", at=T0, status="halted"))

    assert owner_client.get("/api/billing/usage").json()["plan"] == "free"


def test_payment_failed_records_the_reason_and_keeps_the_status(deliver, make_subscription, owner_client):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)
    payment = {
        "id": "pay_Failed000001",
        "entity": "payment",
        "status": "failed",
        "subscription_id": "sub_Pro0000000001",
        "error_code": "BAD_REQUEST_ERROR",
        "error_description": "Your card was declined.",
    }

    response = deliver(event_body("payment.failed", created_at=T0, payment=payment))

    assert response.json() == {"status": "applied"}
    subscription.refresh_from_db()
    assert subscription.status == "active"
    assert subscription.last_payment_error == "Your card was declined."
    assert subscription.last_payment_failed_at.timestamp() == T0
    assert owner_client.get("/api/billing/subscription").json()["subscription"]["last_payment_error"] == (
        "Your card was declined."
    )
    assert AuditLog.objects.filter(action="billing.payment_failed").count() == 1


def test_payment_failed_for_a_payment_outside_subscriptions_is_acknowledged(deliver, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)
    payment = {"id": "pay_Other0000001", "entity": "payment", "status": "failed", "error_description": "Declined"}

    response = deliver(event_body("payment.failed", created_at=T0, payment=payment))

    assert response.json() == {"status": "ignored"}
    subscription.refresh_from_db()
    assert subscription.last_payment_error == ""


def test_an_unknown_event_is_acknowledged_and_logged(deliver, make_subscription, caplog):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)
    body = event_body("order.paid", created_at=T0, payment={"id": "pay_X", "entity": "payment", "status": "captured"})

    with caplog.at_level(logging.INFO, logger="billing.webhooks"):
        response = deliver(body, event_id="evt_order")

    assert response.status_code == 200
    assert response.json() == {"status": "ignored"}
    assert any("order.paid" in record.getMessage() for record in caplog.records)
    assert WebhookEvent.objects.get(event_id="evt_order").outcome == "ignored"
    subscription.refresh_from_db()
    assert subscription.status == "active"


def test_an_event_for_a_subscription_we_do_not_know_is_acknowledged(deliver, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)

    response = deliver(activated(sub_id="sub_NotOurs000001"))

    assert response.json() == {"status": "ignored"}
    subscription.refresh_from_db()
    assert subscription.status == "created"
    assert not Subscription.objects.filter(razorpay_subscription_id="sub_NotOurs000001").exists()


def test_the_webhook_secret_is_not_the_api_secret(anon_client, razorpay_keys, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)
    body = activated()

    response = anon_client.generic(
        "POST",
        WEBHOOK,
        body,
        content_type="application/json",
        headers={"X-Razorpay-Signature": sign(body, secret=KEY_SECRET)},
    )

    assert response.status_code == 400
    subscription.refresh_from_db()
    assert subscription.status == "created"
