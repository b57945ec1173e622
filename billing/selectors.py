"""Reads of the billing app: the plan catalogue, an organization's subscription, and what
it is entitled to in the current period."""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import QuerySet
from django.utils import timezone

from billing.models import FREE_PLAN_CODE, Plan, Subscription, Usage


def active_plans() -> QuerySet[Plan]:
    return Plan.objects.filter(is_active=True)


def free_plan() -> Plan:
    """The free plan's row, or (if an operator deleted it) an unsaved stand-in whose empty
    quotas follow the FREE_PLAN_* settings: every organization is on it without any row."""
    return Plan.objects.filter(code=FREE_PLAN_CODE).first() or Plan(code=FREE_PLAN_CODE, name="Free")


def latest_subscription(organization) -> Subscription | None:
    """The organization's newest subscription, whatever its status (for display)."""
    return Subscription.objects.for_org(organization).select_related("plan").order_by("-created_at").first()


def live_subscription(organization) -> Subscription | None:
    return Subscription.objects.for_org(organization).live().select_related("plan").first()


def calendar_month(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) around `now`: [first day 00:00, first day of next month)."""
    now = now.astimezone(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


@dataclass(frozen=True)
class Entitlement:
    """The plan an organization is on right now, its current period and its limits."""

    plan: Plan
    subscription: Subscription | None
    period_start: datetime
    period_end: datetime

    @property
    def messages_limit(self) -> int:
        return self.plan.messages_limit

    @property
    def reply_tokens_limit(self) -> int:
        return self.plan.reply_tokens_limit

    @property
    def embeddings_limit(self) -> int:
        return self.plan.embeddings_limit


def entitlement(organization, *, now: datetime | None = None) -> Entitlement:
    """A paid subscription's plan while it is entitled (authenticated, active, pending),
    over Razorpay's current billing period when we know it; otherwise the free plan over
    the calendar month (UTC)."""
    now = now or timezone.now()
    subscription = Subscription.objects.for_org(organization).entitled().select_related("plan").first()
    if subscription is None:
        start, end = calendar_month(now)
        return Entitlement(plan=free_plan(), subscription=None, period_start=start, period_end=end)
    start, end = subscription.current_start, subscription.current_end
    if start is None or end is None or not start <= now < end:
        # Before the first charge, or a renewal's webhook has not arrived yet.
        start, end = calendar_month(now)
    return Entitlement(plan=subscription.plan, subscription=subscription, period_start=start, period_end=end)


def usage_for_period(organization, period_start: datetime) -> Usage | None:
    return Usage.objects.for_org(organization).filter(period_start=period_start).first()
