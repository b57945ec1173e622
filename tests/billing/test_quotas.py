"""Metering and quotas: messages reserved atomically against the period's quota, reply
tokens checked before and recorded after, embeddings counted and never refused; the free
plan by default, a paid plan over Razorpay's period."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from billing import quotas, selectors
from billing.models import Plan, SubscriptionStatus, Usage
from raptorflow.errors import PaymentRequired

pytestmark = pytest.mark.django_db


def usage_row(org):
    return Usage.objects.get(organization=org, period_start=selectors.entitlement(org).period_start)


def fill(org, **counts):
    current = selectors.entitlement(org)
    Usage.objects.update_or_create(
        organization=org,
        period_start=current.period_start,
        defaults={"period_end": current.period_end, **counts},
    )


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- periods and plans ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (
            datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
            datetime(2026, 11, 1, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
        ),
        (
            datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
        (datetime(2027, 2, 1, 0, 0, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC)),
    ],
)
def test_the_free_period_is_the_calendar_month_in_utc(org, now, start, end):
    current = selectors.entitlement(org, now=now)

    assert (current.plan.code, current.period_start, current.period_end) == ("free", start, end)


def test_every_organization_starts_on_free_without_any_billing_row(org):
    current = selectors.entitlement(org)

    assert current.plan.code == "free"
    assert current.subscription is None
    assert not Usage.objects.filter(organization=org).exists()


@override_settings(FREE_PLAN_MESSAGES=7, FREE_PLAN_REPLY_TOKENS=70, FREE_PLAN_EMBEDDINGS=700)
def test_free_quotas_follow_the_settings(org):
    current = selectors.entitlement(org)

    assert (current.messages_limit, current.reply_tokens_limit, current.embeddings_limit) == (7, 70, 700)


def test_free_quotas_set_in_the_admin_win_over_the_settings(org):
    Plan.objects.update_or_create(code="free", defaults={"name": "Free", "message_quota": 3})

    assert selectors.entitlement(org).messages_limit == 3


def test_without_the_free_plan_row_quotas_still_work(org):
    Plan.objects.filter(code="free").delete()

    with override_settings(FREE_PLAN_MESSAGES=1):
        quotas.reserve_messages(org)
        with pytest.raises(PaymentRequired):
            quotas.reserve_messages(org)


def test_an_entitled_paid_subscription_uses_razorpays_period(org, make_subscription):
    now = timezone.now()
    start, end = now - timedelta(days=3), now + timedelta(days=27)
    make_subscription(status=SubscriptionStatus.ACTIVE, current_start=start, current_end=end)

    current = selectors.entitlement(org)

    assert (current.plan.code, current.period_start, current.period_end) == ("pro", start, end)
    assert current.messages_limit == 10_000


def test_a_paid_subscription_whose_period_is_unknown_counts_by_calendar_month(org, make_subscription):
    make_subscription(status=SubscriptionStatus.AUTHENTICATED)

    current = selectors.entitlement(org)

    assert current.plan.code == "pro"
    assert current.period_start == selectors.calendar_month(timezone.now())[0]


@pytest.mark.parametrize("status", ["created", "halted", "paused", "cancelled", "completed", "expired"])
def test_subscriptions_not_entitled_leave_the_organization_on_free(org, make_subscription, status):
    make_subscription(status=status)

    assert selectors.entitlement(org).plan.code == "free"


# --- messages ---------------------------------------------------------------------------------


@override_settings(FREE_PLAN_MESSAGES=3)
def test_messages_are_counted_until_the_quota_then_refused(org):
    for _ in range(3):
        quotas.reserve_messages(org)
    assert usage_row(org).messages == 3

    with pytest.raises(PaymentRequired) as refused:
        quotas.reserve_messages(org)

    current = selectors.entitlement(org)
    assert refused.value.status_code == 402
    assert refused.value.default_code == "quota_exceeded"
    assert refused.value.extra["limit"] == 3
    assert refused.value.extra["resets_at"] == iso(current.period_end)
    assert usage_row(org).messages == 3


@override_settings(FREE_PLAN_MESSAGES=5)
def test_a_batch_larger_than_what_remains_is_refused_whole(org):
    fill(org, messages=3)

    with pytest.raises(PaymentRequired):
        quotas.reserve_messages(org, 3)

    assert usage_row(org).messages == 3
    quotas.reserve_messages(org, 2)
    assert usage_row(org).messages == 5


@override_settings(FREE_PLAN_MESSAGES=2)
def test_a_batch_larger_than_the_whole_quota_is_refused(org):
    with pytest.raises(PaymentRequired):
        quotas.reserve_messages(org, 3)

    # Nothing counted (the period's row is not even created for a refusal).
    assert not Usage.objects.filter(organization=org, messages__gt=0).exists()


# reserve_messages reads the entitlement inside its one statement: it must count in the
# period, and up to the limit, that selectors.entitlement() names.
@pytest.mark.parametrize(
    ("subscription", "period"),
    [
        (None, "month"),
        ({"status": SubscriptionStatus.ACTIVE, "current": True}, "razorpay"),
        ({"status": SubscriptionStatus.PENDING, "current": True}, "razorpay"),
        ({"status": SubscriptionStatus.AUTHENTICATED, "current": False}, "month"),
        ({"status": SubscriptionStatus.ACTIVE, "current": "past"}, "month"),
        ({"status": SubscriptionStatus.HALTED, "current": True}, "month"),
    ],
)
def test_the_reservation_counts_in_the_entitlements_period_to_its_limit(org, make_subscription, subscription, period):
    now = timezone.now()
    if subscription is not None:
        window = {
            True: {"current_start": now - timedelta(days=3), "current_end": now + timedelta(days=27)},
            "past": {"current_start": now - timedelta(days=40), "current_end": now - timedelta(days=10)},
            False: {},
        }[subscription["current"]]
        make_subscription(status=subscription["status"], **window)
    current = selectors.entitlement(org)
    expected_start = current.period_start if period == "razorpay" else selectors.calendar_month(now)[0]
    assert current.period_start == expected_start
    fill(org, messages=current.messages_limit - 2)

    quotas.reserve_messages(org, 2)
    with pytest.raises(PaymentRequired) as refused:
        quotas.reserve_messages(org)

    row = Usage.objects.get(organization=org)
    assert (row.period_start, row.period_end, row.messages) == (
        current.period_start,
        current.period_end,
        current.messages_limit,
    )
    assert refused.value.extra["limit"] == current.messages_limit


@override_settings(FREE_PLAN_MESSAGES=7)
def test_the_reservation_follows_the_free_plan_row_then_the_settings(org):
    Plan.objects.update_or_create(code="free", defaults={"name": "Free", "message_quota": 2})
    quotas.reserve_messages(org, 2)
    with pytest.raises(PaymentRequired):
        quotas.reserve_messages(org)

    Plan.objects.filter(code="free").delete()
    quotas.reserve_messages(org, 5)
    with pytest.raises(PaymentRequired):
        quotas.reserve_messages(org)
    assert usage_row(org).messages == 7


@override_settings(FREE_PLAN_MESSAGES=1)
def test_a_reservation_rolls_back_with_its_callers_transaction(org):
    with pytest.raises(RuntimeError), transaction.atomic():
        quotas.reserve_messages(org)
        raise RuntimeError("the message could not be stored")

    assert Usage.objects.filter(organization=org, messages__gt=0).count() == 0
    quotas.reserve_messages(org)


@override_settings(FREE_PLAN_MESSAGES=1)
def test_last_months_usage_does_not_count_this_month(org):
    this_month = selectors.entitlement(org).period_start
    last_month = selectors.calendar_month(this_month - timedelta(days=1))
    Usage.objects.create(organization=org, period_start=last_month[0], period_end=last_month[1], messages=1)

    quotas.reserve_messages(org)

    assert usage_row(org).messages == 1
    assert Usage.objects.filter(organization=org).count() == 2


@override_settings(FREE_PLAN_MESSAGES=1)
def test_quotas_are_per_organization(org, outsider):
    quotas.reserve_messages(org)

    quotas.reserve_messages(outsider.default_organization)

    with pytest.raises(PaymentRequired):
        quotas.reserve_messages(org)


def test_a_paid_plan_lifts_the_free_quota(org, make_subscription):
    with override_settings(FREE_PLAN_MESSAGES=1):
        quotas.reserve_messages(org)
        with pytest.raises(PaymentRequired):
            quotas.reserve_messages(org)

        make_subscription(status=SubscriptionStatus.ACTIVE)

        quotas.reserve_messages(org)


def test_count_must_be_positive(org):
    with pytest.raises(ValueError):
        quotas.reserve_messages(org, 0)


# --- reply tokens and embeddings -----------------------------------------------------------------


@override_settings(FREE_PLAN_REPLY_TOKENS=100)
def test_a_reply_needs_remaining_tokens(org):
    quotas.require_reply_tokens(org)
    quotas.record_reply_tokens(org, 99)
    quotas.require_reply_tokens(org)

    quotas.record_reply_tokens(org, 5)  # the provider's reported usage may overshoot

    assert usage_row(org).reply_tokens == 104
    with pytest.raises(PaymentRequired) as refused:
        quotas.require_reply_tokens(org)
    assert refused.value.extra["limit"] == 100
    assert refused.value.extra["resets_at"] == iso(selectors.entitlement(org).period_end)


@override_settings(FREE_PLAN_REPLY_TOKENS=100)
def test_reply_tokens_are_reserved_while_some_remain_then_settled_to_what_was_used(org):
    first = quotas.reserve_reply_tokens(org, 90)
    second = quotas.reserve_reply_tokens(org, 50)  # 10 remained: it may start, and overshoot by its size

    assert usage_row(org).reply_tokens == 140
    with pytest.raises(PaymentRequired) as refused:
        quotas.reserve_reply_tokens(org, 1)
    assert (refused.value.extra["limit"], refused.value.extra["quota"]) == (100, "reply_tokens")
    assert refused.value.extra["resets_at"] == iso(selectors.entitlement(org).period_end)

    quotas.settle_reply_tokens(first, 30)
    quotas.settle_reply_tokens(first, 30)  # once only
    quotas.extend_reply_tokens(second, 20)
    assert usage_row(org).reply_tokens == 100
    quotas.settle_reply_tokens(second, 0)  # nothing produced: the whole hold is given back
    assert usage_row(org).reply_tokens == 30


@override_settings(FREE_PLAN_REPLY_TOKENS=0)
def test_no_reply_tokens_left_refuses_the_reservation_and_counts_nothing(org):
    with pytest.raises(PaymentRequired):
        quotas.reserve_reply_tokens(org, 10)

    assert usage_row(org).reply_tokens == 0


def test_a_reply_token_reservation_rolls_back_with_its_callers_transaction(org):
    with pytest.raises(RuntimeError), transaction.atomic():
        quotas.reserve_reply_tokens(org, 10)
        raise RuntimeError("the question could not be stored")

    assert not Usage.objects.filter(organization=org, reply_tokens__gt=0).exists()


def test_reply_token_reservations_must_be_positive(org):
    with pytest.raises(ValueError):
        quotas.reserve_reply_tokens(org, 0)


def test_checking_reply_tokens_writes_nothing(org):
    quotas.require_reply_tokens(org)

    assert not Usage.objects.filter(organization=org).exists()


@override_settings(FREE_PLAN_EMBEDDINGS=2)
def test_embeddings_are_counted_and_never_refused(org):
    quotas.record_embeddings(org, 2)
    quotas.record_embeddings(org, 3)

    assert usage_row(org).embeddings == 5


def test_recording_nothing_writes_nothing(org):
    quotas.record_embeddings(org, 0)
    quotas.record_reply_tokens(org, 0)

    assert not Usage.objects.filter(organization=org).exists()


# --- the usage endpoint --------------------------------------------------------------------------


@override_settings(FREE_PLAN_MESSAGES=10, FREE_PLAN_REPLY_TOKENS=1000, FREE_PLAN_EMBEDDINGS=50)
def test_usage_shows_this_periods_counts_against_the_quotas(owner_client, org):
    quotas.reserve_messages(org, 4)
    quotas.record_reply_tokens(org, 1200)
    quotas.record_embeddings(org, 7)
    current = selectors.entitlement(org)

    response = owner_client.get("/api/billing/usage")

    assert response.status_code == 200
    assert response.json() == {
        "plan": "free",
        "period_start": iso(current.period_start),
        "period_end": iso(current.period_end),
        "resets_at": iso(current.period_end),
        "messages": {"used": 4, "limit": 10, "remaining": 6},
        "reply_tokens": {"used": 1200, "limit": 1000, "remaining": 0},
        "embeddings": {"used": 7, "limit": 50, "remaining": 43},
    }


def test_usage_of_a_fresh_organization_is_zero_and_writes_nothing(teammate_client, org):
    body = teammate_client.get("/api/billing/usage").json()

    assert body["messages"]["used"] == 0
    assert not Usage.objects.filter(organization=org).exists()


@override_settings(FREE_PLAN_MESSAGES=10)
def test_usage_is_the_callers_organization_only(outsider_client, org):
    quotas.reserve_messages(org, 4)

    assert outsider_client.get("/api/billing/usage").json()["messages"]["used"] == 0


def test_usage_needs_a_token(anon_client):
    assert anon_client.get("/api/billing/usage").status_code == 401
