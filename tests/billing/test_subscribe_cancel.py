"""Subscribing and cancelling through the API, with Razorpay's HTTP API mocked through the
real SDK: what the client gets for Checkout, what Razorpay is asked, the row after, the
role checks and the 503 without keys."""

import json

import pytest
import requests

from billing.models import Subscription, SubscriptionStatus
from raptorflow.models import AuditLog
from tests.billing_fixtures import KEY_ID, PRO_PLAN_ID, RAZORPAY_API, TEAM_PLAN_ID, razorpay_error, subscription_entity

pytestmark = pytest.mark.django_db

SUBSCRIBE = "/api/billing/subscribe"
CANCEL = "/api/billing/cancel"


def test_owner_subscribes_and_gets_what_checkout_needs(owner_client, owner, org, pro_plan, razorpay_keys, rzp):
    create = rzp.post(f"{RAZORPAY_API}/subscriptions", json=subscription_entity("sub_New0000000001"))

    response = owner_client.post(SUBSCRIBE, {"plan": "pro"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["key_id"] == KEY_ID
    assert body["subscription_id"] == "sub_New0000000001"
    assert body["status"] == "created"
    assert body["short_url"] == "https://rzp.io/i/000001"
    assert body["plan"]["code"] == "pro"
    assert body["plan"]["price_paise"] == 99_900
    assert body["prefill"] == {"name": "Olivia Owner", "email": "olivia@acme.test"}
    assert body["notes"] == {"organization_id": str(org.id)}
    assert body["subscription"]["status"] == "created"

    assert create.call_count == 1
    sent = rzp.calls[0].request
    assert json.loads(sent.body) == {
        "plan_id": PRO_PLAN_ID,
        "total_count": 120,
        "customer_notify": 1,
        "notes": {"organization_id": str(org.id), "plan": "pro"},
    }
    assert sent.headers["Authorization"].startswith("Basic ")

    row = Subscription.objects.get(razorpay_subscription_id="sub_New0000000001")
    assert (row.organization, row.plan, row.status, row.created_by) == (org, pro_plan, "created", owner)
    entry = AuditLog.objects.get(action="billing.subscribe")
    assert entry.organization_id == org.id and entry.actor_id == owner.id
    assert entry.details["plan"] == "pro"


def test_subscribing_again_before_checkout_returns_the_same_subscription(
    owner_client, org, pro_plan, razorpay_keys, rzp
):
    create = rzp.post(f"{RAZORPAY_API}/subscriptions", json=subscription_entity("sub_New0000000001"))
    first = owner_client.post(SUBSCRIBE, {"plan": "pro"}, format="json")

    again = owner_client.post(SUBSCRIBE, {"plan": "pro"}, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["subscription_id"] == "sub_New0000000001"
    assert create.call_count == 1
    assert Subscription.objects.filter(organization=org).count() == 1


def test_choosing_another_plan_before_checkout_cancels_the_unpaid_one(
    owner_client, org, pro_plan, team_plan, razorpay_keys, rzp, make_subscription
):
    old = make_subscription(status=SubscriptionStatus.CREATED, sub_id="sub_Old0000000001")
    cancel = rzp.post(
        f"{RAZORPAY_API}/subscriptions/sub_Old0000000001/cancel",
        json=subscription_entity("sub_Old0000000001", status="cancelled", ended_at=1_790_000_500),
    )
    rzp.post(
        f"{RAZORPAY_API}/subscriptions",
        json=subscription_entity("sub_Team000000001", plan_id=TEAM_PLAN_ID),
    )

    response = owner_client.post(SUBSCRIBE, {"plan": "team"}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["subscription_id"] == "sub_Team000000001"
    assert cancel.call_count == 1
    assert json.loads(rzp.calls[0].request.body) == {"cancel_at_cycle_end": 0}
    old.refresh_from_db()
    assert old.status == "cancelled"
    assert Subscription.objects.get(razorpay_subscription_id="sub_Team000000001").plan == team_plan


@pytest.mark.parametrize("status", ["authenticated", "active", "pending", "halted"])
def test_subscribing_while_a_subscription_is_live_is_a_conflict(
    owner_client, org, pro_plan, team_plan, razorpay_keys, rzp, make_subscription, status
):
    make_subscription(status=status)

    response = owner_client.post(SUBSCRIBE, {"plan": "team"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_subscribed"
    assert len(rzp.calls) == 0
    assert Subscription.objects.filter(organization=org).count() == 1


def test_admin_may_subscribe(admin_client, org, pro_plan, razorpay_keys, rzp):
    rzp.post(f"{RAZORPAY_API}/subscriptions", json=subscription_entity("sub_New0000000001"))

    response = admin_client.post(SUBSCRIBE, {"plan": "pro"}, format="json")

    assert response.status_code == 201
    assert Subscription.objects.filter(organization=org).count() == 1


def test_member_cannot_subscribe(teammate_client, org, pro_plan, razorpay_keys, rzp):
    response = teammate_client.post(SUBSCRIBE, {"plan": "pro"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert len(rzp.calls) == 0
    assert not Subscription.objects.exists()


def test_anonymous_cannot_subscribe(anon_client, pro_plan, razorpay_keys):
    assert anon_client.post(SUBSCRIBE, {"plan": "pro"}, format="json").status_code == 401


def test_subscribe_without_razorpay_keys_is_503(owner_client, pro_plan, no_razorpay_keys, rzp):
    response = owner_client.post(SUBSCRIBE, {"plan": "pro"}, format="json")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_configured"
    assert "RAZORPAY_KEY_ID" in error["message"]
    assert len(rzp.calls) == 0
    assert not Subscription.objects.exists()


def test_cancel_without_razorpay_keys_is_503(owner_client, make_subscription, no_razorpay_keys, rzp):
    subscription = make_subscription()

    response = owner_client.post(CANCEL, {}, format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_configured"
    subscription.refresh_from_db()
    assert subscription.status == "active"


def test_paid_plan_without_its_razorpay_plan_id_is_503(owner_client, pro_plan, razorpay_keys, rzp):
    pro_plan.razorpay_plan_id = ""
    pro_plan.save()

    response = owner_client.post(SUBSCRIBE, {"plan": "pro"}, format="json")

    assert response.status_code == 503
    assert "Razorpay plan id" in response.json()["error"]["message"]
    assert len(rzp.calls) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plan": "free"}, "plan"),
        ({"plan": "platinum"}, "plan"),
        ({}, "plan"),
        ({"plan": "pro", "price_paise": 1}, "price_paise"),
    ],
)
def test_subscribe_rejects_bad_input(owner_client, pro_plan, razorpay_keys, rzp, body, field):
    response = owner_client.post(SUBSCRIBE, body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert len(rzp.calls) == 0
    assert not Subscription.objects.exists()


def test_an_inactive_plan_cannot_be_subscribed(owner_client, pro_plan, razorpay_keys, rzp):
    pro_plan.is_active = False
    pro_plan.save()

    response = owner_client.post(SUBSCRIBE, {"plan": "pro"}, format="json")

    assert response.status_code == 400
    assert "plan" in response.json()["error"]["fields"]


def test_razorpay_refusing_the_subscription_is_502_with_nothing_stored(owner_client, pro_plan, razorpay_keys, rzp):
    rzp.post(f"{RAZORPAY_API}/subscriptions", json=razorpay_error("The plan_id provided does not exist"), status=400)

    response = owner_client.post(SUBSCRIBE, {"plan": "pro"}, format="json")

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_bad_response"
    assert "Razorpay" in error["message"] and "plan_id provided does not exist" in error["message"]
    assert not Subscription.objects.exists()
    assert not AuditLog.objects.filter(action="billing.subscribe").exists()


@pytest.mark.parametrize(
    "failure",
    [
        {"body": requests.exceptions.ConnectTimeout("timed out")},
        {"body": requests.exceptions.ConnectionError("refused")},
        {"json": razorpay_error("Something went wrong", code="SERVER_ERROR"), "status": 500},
    ],
    ids=["timeout", "unreachable", "server-error"],
)
def test_razorpay_down_is_503_with_nothing_stored(owner_client, pro_plan, razorpay_keys, rzp, failure):
    rzp.post(f"{RAZORPAY_API}/subscriptions", **failure)

    response = owner_client.post(SUBSCRIBE, {"plan": "pro"}, format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert "Razorpay" in response.json()["error"]["message"]
    assert not Subscription.objects.exists()


def test_razorpay_answering_html_is_502(owner_client, pro_plan, razorpay_keys, rzp):
    rzp.post(f"{RAZORPAY_API}/subscriptions", body="<html>Bad gateway</html>", status=502)

    response = owner_client.post(SUBSCRIBE, {"plan": "pro"}, format="json")

    assert response.status_code == 502
    assert not Subscription.objects.exists()


def test_razorpay_calls_have_a_timeout(owner_client, pro_plan, razorpay_keys, rzp):
    rzp.post(f"{RAZORPAY_API}/subscriptions", json=subscription_entity("sub_New0000000001"))

    owner_client.post(SUBSCRIBE, {"plan": "pro"}, format="json")

    assert rzp.calls[0].request.req_kwargs["timeout"] is not None


def test_owner_cancels_now_and_the_organization_is_back_on_free(
    owner_client, owner, org, make_subscription, razorpay_keys, rzp
):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)
    rzp.post(
        f"{RAZORPAY_API}/subscriptions/sub_Pro0000000001/cancel",
        json=subscription_entity(status="cancelled", ended_at=1_790_000_900),
    )

    response = owner_client.post(CANCEL, {}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "cancelled"
    assert json.loads(rzp.calls[0].request.body) == {"cancel_at_cycle_end": 0}
    subscription.refresh_from_db()
    assert subscription.status == "cancelled"
    assert subscription.ended_at is not None
    assert owner_client.get("/api/billing/subscription").json()["plan"]["code"] == "free"
    entry = AuditLog.objects.get(action="billing.cancel")
    assert entry.actor_id == owner.id and entry.organization_id == org.id


def test_cancel_at_cycle_end_keeps_the_plan_until_then(owner_client, make_subscription, razorpay_keys, rzp):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)
    rzp.post(
        f"{RAZORPAY_API}/subscriptions/sub_Pro0000000001/cancel",
        json=subscription_entity(status="active", has_scheduled_changes=True),
    )

    response = owner_client.post(CANCEL, {"at_cycle_end": True}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "active"
    assert response.json()["cancel_at_cycle_end"] is True
    assert json.loads(rzp.calls[0].request.body) == {"cancel_at_cycle_end": 1}
    subscription.refresh_from_db()
    assert (subscription.status, subscription.cancel_at_cycle_end) == ("active", True)
    assert owner_client.get("/api/billing/subscription").json()["plan"]["code"] == "pro"

    # Asking again changes nothing and does not call Razorpay again.
    assert owner_client.post(CANCEL, {"at_cycle_end": True}, format="json").status_code == 200
    assert len(rzp.calls) == 1


def test_cancelling_again_after_cancellation_is_an_idempotent_200(owner_client, make_subscription, razorpay_keys, rzp):
    make_subscription(status=SubscriptionStatus.CANCELLED)

    response = owner_client.post(CANCEL, {}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert len(rzp.calls) == 0


def test_cancel_without_any_subscription_is_a_conflict(owner_client, org, razorpay_keys, rzp):
    response = owner_client.post(CANCEL, {}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_subscription"
    assert len(rzp.calls) == 0


def test_member_cannot_cancel(teammate_client, make_subscription, razorpay_keys, rzp):
    subscription = make_subscription()

    response = teammate_client.post(CANCEL, {}, format="json")

    assert response.status_code == 403
    assert len(rzp.calls) == 0
    subscription.refresh_from_db()
    assert subscription.status == "active"


def test_admin_may_cancel(admin_client, make_subscription, razorpay_keys, rzp):
    subscription = make_subscription()
    rzp.post(f"{RAZORPAY_API}/subscriptions/sub_Pro0000000001/cancel", json=subscription_entity(status="cancelled"))

    assert admin_client.post(CANCEL, {}, format="json").status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == "cancelled"


def test_outsider_cannot_cancel_another_organizations_subscription(
    outsider_client, make_subscription, razorpay_keys, rzp
):
    subscription = make_subscription()

    response = outsider_client.post(CANCEL, {}, format="json")

    # The outsider's own organization has nothing to cancel; ours is untouched.
    assert response.status_code == 409
    assert len(rzp.calls) == 0
    subscription.refresh_from_db()
    assert subscription.status == "active"


def test_cancel_rejects_unknown_fields(owner_client, make_subscription, razorpay_keys, rzp):
    make_subscription()

    response = owner_client.post(CANCEL, {"immediately": True}, format="json")

    assert response.status_code == 400
    assert "immediately" in response.json()["error"]["fields"]
    assert len(rzp.calls) == 0


def test_razorpay_failing_a_cancel_leaves_the_subscription_as_it_was(
    owner_client, make_subscription, razorpay_keys, rzp
):
    subscription = make_subscription()
    rzp.post(
        f"{RAZORPAY_API}/subscriptions/sub_Pro0000000001/cancel",
        body=requests.exceptions.ReadTimeout("read timed out"),
    )

    response = owner_client.post(CANCEL, {}, format="json")

    assert response.status_code == 503
    subscription.refresh_from_db()
    assert subscription.status == "active"
    assert not AuditLog.objects.filter(action="billing.cancel").exists()
