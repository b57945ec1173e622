"""Signed Razorpay events with values that cannot be used are acknowledged (200) and stored
as ignored with the reason, never a 5xx (Razorpay retries those and then disables the
webhook); and a signed body replayed under a new, unsigned X-Razorpay-Event-Id changes
nothing."""

import hashlib
import json

import pytest

from billing.models import SubscriptionStatus, WebhookEvent
from tests.billing.conftest import event_body
from tests.billing.test_webhook import T0, activated, subscription_event

pytestmark = pytest.mark.django_db


def activation_with(**entity) -> bytes:
    return subscription_event("subscription.activated", at=T0 + 100, status="active", **entity)


def raw(payload: dict) -> bytes:
    # allow_nan: Python writes NaN and Infinity, as a sender may.
    return json.dumps(payload).encode()


def nested(depth: int) -> dict:
    payload = json.loads(activated())
    inner = payload["payload"]["subscription"]["entity"]["notes"] = {}
    for _ in range(depth):
        inner["n"] = {}
        inner = inner["n"]
    return payload


def odd_bodies() -> dict[str, bytes]:
    deep = b'{"event": "subscription.activated", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return {
        "huge created_at": raw(json.loads(activated()) | {"created_at": 10**20}),
        "NaN created_at": raw(json.loads(activated()) | {"created_at": float("nan")}),
        "infinite created_at": raw(json.loads(activated()) | {"created_at": float("inf")}),
        "negative huge created_at": raw(json.loads(activated()) | {"created_at": -(10**18)}),
        "huge current_end": activation_with(current_end=1e300),
        "NaN inside an entity": activated(quantity=float("nan")),
        "huge paid_count": activation_with(paid_count=10**40),
        "NUL in the event name": raw(json.loads(activated()) | {"event": "subscription.activated\x00"}),
        "NUL deep inside": activated(notes={"k": "a\x00b"}),
        "NUL in a key": activated(notes={"a\x00": "b"}),
        "lone surrogate": activated(notes={"k": "\ud800"}),
        "lone surrogate in the event name": raw(json.loads(activated()) | {"event": "subscription.\udfff"}),
        "nested 100 levels": raw(nested(100)),
        "nested beyond the parser": deep,
    }


@pytest.mark.parametrize("case", list(odd_bodies()))
def test_a_signed_event_with_odd_values_is_acknowledged_as_ignored(deliver, make_subscription, case):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)
    body = odd_bodies()[case]

    response = deliver(body, event_id=f"evt_{case.replace(' ', '_')}")

    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ignored"}
    event = WebhookEvent.objects.get()
    assert event.outcome == "ignored"
    assert event.reason
    subscription.refresh_from_db()
    assert subscription.status == "created"

    # Razorpay's redelivery of it is recognised.
    again = deliver(body, event_id=f"evt_{case.replace(' ', '_')}")
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert WebhookEvent.objects.count() == 1


def test_the_reason_names_the_problem(deliver, make_subscription):
    make_subscription(status=SubscriptionStatus.CREATED)

    deliver(raw(json.loads(activated()) | {"created_at": float("nan")}), event_id="evt_nan")
    deliver(activated(notes={"k": "\x00"}), event_id="evt_nul")
    deliver(raw(nested(100)), event_id="evt_deep")

    reasons = dict(WebhookEvent.objects.values_list("event_id", "reason"))
    assert reasons == {
        "evt_nan": "created_at is not a usable timestamp",
        "evt_nul": "a string holds a NUL character",
        "evt_deep": "nested deeper than 64 levels",
    }


def test_a_payment_event_with_a_huge_timestamp_is_ignored(deliver, make_subscription):
    subscription = make_subscription()
    body = event_body(
        "payment.failed",
        created_at=10**19,
        payment={"id": "pay_1", "subscription_id": subscription.razorpay_subscription_id, "error_description": "x"},
    )

    response = deliver(body)

    assert response.json() == {"status": "ignored"}
    subscription.refresh_from_db()
    assert subscription.last_payment_failed_at is None


def test_ordinary_events_still_apply(deliver, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)

    assert deliver(activated(notes={"emoji": "\U0001f680", "nested": {"a": [1, 2.5, None]}})).json() == {
        "status": "applied"
    }
    subscription.refresh_from_db()
    assert subscription.status == "active"


# --- replays under a new event id --------------------------------------------------------


def test_a_signed_body_replayed_under_a_new_event_id_changes_nothing(deliver, make_subscription):
    subscription = make_subscription(status=SubscriptionStatus.CREATED)
    activation = activated(at=T0 + 100)
    assert deliver(activation, event_id="evt_act").json() == {"status": "applied"}
    halted = subscription_event("subscription.halted", at=T0 + 500, status="halted")
    assert deliver(halted, event_id="evt_halt").json() == {"status": "applied"}

    replay = deliver(activation, event_id="evt_act_again")
    halted_replay = deliver(halted, event_id="evt_halt_again")

    assert (replay.status_code, replay.json()) == (200, {"status": "duplicate"})
    assert halted_replay.json() == {"status": "duplicate"}
    assert set(WebhookEvent.objects.values_list("event_id", flat=True)) == {"evt_act", "evt_halt"}
    subscription.refresh_from_db()
    assert subscription.status == "halted"


def test_a_replayed_payment_failure_is_not_recorded_twice(deliver, make_subscription):
    subscription = make_subscription()
    body = event_body(
        "payment.failed",
        created_at=T0,
        payment={"id": "pay_1", "subscription_id": subscription.razorpay_subscription_id, "error_description": "x"},
    )
    deliver(body, event_id="evt_1")

    assert deliver(body, event_id="evt_2").json() == {"status": "duplicate"}
    assert WebhookEvent.objects.count() == 1


def test_each_stored_event_keeps_the_hash_of_its_signed_body(deliver, make_subscription):
    make_subscription(status=SubscriptionStatus.CREATED)
    body = subscription_event("subscription.activated", at=T0, status="active")

    deliver(body, event_id="evt_h")

    assert WebhookEvent.objects.get().body_sha256 == hashlib.sha256(body).hexdigest()
