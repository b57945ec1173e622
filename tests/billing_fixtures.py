"""Billing fixtures shared across test directories (registered as a plugin by the root
tests/conftest.py): Razorpay keys, the paid plans with their Razorpay plan ids, billing
subscription rows, and Razorpay's HTTP API mocked through the real SDK with `responses`."""

import pytest
import responses
from django.test import override_settings

from billing.models import Plan, Subscription, SubscriptionStatus

KEY_ID = "rzp_test_1DP5mmOlF5G5ag"
KEY_SECRET = "test-key-secret"
WEBHOOK_SECRET = "test-webhook-secret"
RAZORPAY_API = "https://api.razorpay.com/v1"
PRO_PLAN_ID = "plan_ProMonthly0001"
TEAM_PLAN_ID = "plan_TeamMonthly001"


@pytest.fixture
def razorpay_keys():
    with override_settings(
        RAZORPAY_KEY_ID=KEY_ID, RAZORPAY_KEY_SECRET=KEY_SECRET, RAZORPAY_WEBHOOK_SECRET=WEBHOOK_SECRET
    ):
        yield


@pytest.fixture
def no_razorpay_keys():
    with override_settings(RAZORPAY_KEY_ID="", RAZORPAY_KEY_SECRET="", RAZORPAY_WEBHOOK_SECRET=""):
        yield


@pytest.fixture
def pro_plan(db):
    plan, _ = Plan.objects.update_or_create(
        code="pro",
        defaults={
            "name": "Pro",
            "price_paise": 99_900,
            "razorpay_plan_id": PRO_PLAN_ID,
            "message_quota": 10_000,
            "reply_token_quota": 2_000_000,
            "embedding_quota": 20_000,
            "is_active": True,
        },
    )
    return plan


@pytest.fixture
def team_plan(db):
    plan, _ = Plan.objects.update_or_create(
        code="team",
        defaults={
            "name": "Team",
            "price_paise": 299_900,
            "razorpay_plan_id": TEAM_PLAN_ID,
            "message_quota": 50_000,
            "reply_token_quota": 10_000_000,
            "embedding_quota": 100_000,
            "is_active": True,
        },
    )
    return plan


@pytest.fixture
def rzp():
    """Razorpay's API, mocked at the HTTP boundary; a call nothing was registered for gets
    a ConnectionError (a 503 through billing.razorpay), so it cannot pass unnoticed."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def make_subscription(org, pro_plan):
    """A billing subscription row (of the owner's organization on Pro, active, by default)."""

    def make(*, organization=None, plan=None, status=SubscriptionStatus.ACTIVE, sub_id="sub_Pro0000000001", **kw):
        return Subscription.objects.create(
            organization=organization or org,
            plan=plan or pro_plan,
            razorpay_subscription_id=sub_id,
            status=status,
            **kw,
        )

    return make


def subscription_entity(sub_id="sub_Pro0000000001", *, status="created", plan_id=PRO_PLAN_ID, **extra) -> dict:
    """A Razorpay subscription entity as its API and webhooks send it."""
    entity = {
        "id": sub_id,
        "entity": "subscription",
        "plan_id": plan_id,
        "customer_id": None,
        "status": status,
        "current_start": None,
        "current_end": None,
        "ended_at": None,
        "quantity": 1,
        "notes": {},
        "charge_at": None,
        "start_at": None,
        "end_at": None,
        "auth_attempts": 0,
        "total_count": 120,
        "paid_count": 0,
        "customer_notify": True,
        "created_at": 1_790_000_000,
        "expire_by": None,
        "short_url": f"https://rzp.io/i/{sub_id[-6:]}",
        "has_scheduled_changes": False,
        "change_scheduled_at": None,
        "source": "api",
        "remaining_count": 120,
    }
    entity.update(extra)
    return entity


def cancel_url(sub_id="sub_Pro0000000001") -> str:
    return f"{RAZORPAY_API}/subscriptions/{sub_id}/cancel"


def razorpay_error(description="The id provided does not exist", code="BAD_REQUEST_ERROR") -> dict:
    return {
        "error": {"code": code, "description": description, "source": "business", "reason": "input_validation_failed"}
    }
