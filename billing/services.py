"""Writes of the billing app: subscribing, cancelling, and applying what Razorpay reports
about a subscription (from its API answers and from webhooks, through one function)."""

import logging
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction

from accounts.models import Membership, Organization, Role, User
from accounts.services.roles import require_manager
from billing import razorpay, selectors
from billing.models import Plan, Subscription, SubscriptionStatus
from raptorflow import audit
from raptorflow.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotConfigured,
    PaymentRequired,
    UpstreamBadResponse,
)

logger = logging.getLogger(__name__)


@transaction.atomic
def subscription_start(*, actor: Membership, plan: Plan) -> tuple[Subscription, bool]:
    """Creates the Razorpay subscription the client then opens Checkout for: (subscription,
    created). Asking again for the same plan before Checkout completes returns the same
    one; a live subscription must be cancelled first. Owners and admins only."""
    require_manager(actor)
    organization, user = actor.organization, actor.user
    if plan.is_free:
        raise InvalidInput({"plan": ["The free plan needs no subscription: cancel the paid one instead."]})
    razorpay.require_configured()
    if not plan.razorpay_plan_id:
        raise NotConfigured(f"The {plan.name} plan has no Razorpay plan id yet; an operator sets it in the admin.")
    _lock(organization)

    live = selectors.live_subscription(organization)
    if live is not None and live.status != SubscriptionStatus.CREATED:
        raise Conflict(
            f"This organization already has a {live.plan.name} subscription ({live.status}); cancel it first.",
            code="already_subscribed",
        )
    if live is not None and live.plan_id == plan.pk:
        return live, False
    if live is not None:
        # An abandoned Checkout for another plan: cancel it so it can never be paid as well.
        apply_entity(live, razorpay.cancel_subscription(live.razorpay_subscription_id, at_cycle_end=False))
        if not live.is_final:
            raise UpstreamBadResponse("Razorpay did not cancel the previous, unpaid subscription.")
        live.save()

    entity = razorpay.create_subscription(
        plan_id=plan.razorpay_plan_id, notes={"organization_id": str(organization.pk), "plan": plan.code}
    )
    subscription = Subscription(
        organization=organization, plan=plan, razorpay_subscription_id=entity["id"], created_by=user
    )
    apply_entity(subscription, entity)
    subscription.save()
    audit.record(
        "billing.subscribe",
        actor=user,
        organization=organization,
        target=subscription,
        plan=plan.code,
        razorpay_subscription_id=subscription.razorpay_subscription_id,
    )
    return subscription, True


@transaction.atomic
def subscription_cancel(*, actor: Membership, at_cycle_end: bool = False) -> Subscription:
    """Cancels the live subscription, now or (for an active one) at the end of the paid
    period. Repeating it changes nothing. Owners and admins only."""
    require_manager(actor)
    organization, user = actor.organization, actor.user
    razorpay.require_configured()
    _lock(organization)
    live = selectors.live_subscription(organization)
    if live is None:
        latest = selectors.latest_subscription(organization)
        if latest is None:
            raise Conflict("This organization has no subscription to cancel.", code="no_subscription")
        return latest
    # Only a paid-up subscription has a cycle end to wait for; anything else stops now.
    at_cycle_end = at_cycle_end and live.status == SubscriptionStatus.ACTIVE
    if at_cycle_end and live.cancel_at_cycle_end:
        return live

    apply_entity(live, razorpay.cancel_subscription(live.razorpay_subscription_id, at_cycle_end=at_cycle_end))
    if at_cycle_end and not live.is_final:
        live.cancel_at_cycle_end = True
    live.save()
    audit.record(
        "billing.cancel",
        actor=user,
        organization=organization,
        target=live,
        plan=live.plan.code,
        at_cycle_end=at_cycle_end,
        status=live.status,
    )
    return live


def cancel_for_organization_deletion(organization) -> None:
    """Cancels the organization's live Razorpay subscription, if any, before the
    organization is deleted. Blocking: when it cannot be cancelled (Razorpay unreachable,
    failing or refusing, or its keys not configured) the failure is logged with the
    subscription id and re-raised (503; 502 for a refusal), so the deletion is refused and
    nothing is deleted: a deleted organization would leave Razorpay charging for it with
    nobody left to cancel."""
    live = selectors.live_subscription(organization)
    if live is None:
        return
    try:
        entity = razorpay.cancel_subscription(live.razorpay_subscription_id, at_cycle_end=False)
    except DomainError:
        logger.exception(
            "Could not cancel Razorpay subscription %s of organization %s; its deletion is refused",
            live.razorpay_subscription_id,
            organization.pk,
        )
        raise
    apply_entity(live, entity)
    live.save()
    audit.record(
        "billing.cancel",
        organization=organization,
        target=live,
        plan=live.plan.code,
        reason="organization_deleted",
        status=live.status,
    )


def limit_free_organizations(owner: User) -> None:
    """Refuses a new organization for `owner` once they own FREE_ORGANIZATIONS_PER_USER
    organizations on the free plan (their personal one included): each brings a fresh free
    quota, spent on the server's own provider keys. An organization with an entitled (paid)
    subscription does not count, and subscribing one frees a place. Called through the
    organization_creating hook point, inside the creating transaction."""
    # The owner's row locked until the creation commits: two creations at once cannot
    # both see room for one more.
    User.objects.select_for_update().filter(pk=owner.pk).first()
    limit = settings.FREE_ORGANIZATIONS_PER_USER
    free_owned = (
        Organization.objects.filter(memberships__user=owner, memberships__role=Role.OWNER)
        .exclude(pk__in=Subscription.objects.entitled().values("organization_id"))
        .count()
    )
    if free_owned >= limit:
        raise PaymentRequired(
            f"You already own {free_owned} organizations on the free plan, the most one person may own "
            f"({limit}); subscribe one of them to a paid plan, or delete one, to create another.",
            code="free_organization_limit",
            limit=limit,
        )


def apply_entity(subscription: Subscription, entity: dict) -> None:
    """Copies Razorpay's view of a subscription onto ours (without saving). Razorpay's
    status is the truth, except that a final status (cancelled, completed, expired) is
    never left: Razorpay never does, so an answer saying otherwise is out of date."""
    status = entity.get("status")
    if status in SubscriptionStatus.values and not (subscription.is_final and status != subscription.status):
        subscription.status = status
    if subscription.is_final:
        subscription.cancel_at_cycle_end = False
    for field in ("current_start", "current_end", "charge_at", "ended_at"):
        if field in entity:
            setattr(subscription, field, timestamp(entity[field]))
    if isinstance(entity.get("paid_count"), int):
        subscription.paid_count = max(entity["paid_count"], 0)
    if isinstance(entity.get("short_url"), str):
        subscription.short_url = entity["short_url"][:500]
    plan_id = entity.get("plan_id")
    if isinstance(plan_id, str) and plan_id and plan_id != subscription.plan.razorpay_plan_id:
        # A plan change made in Razorpay (subscription.updated).
        plan = Plan.objects.filter(razorpay_plan_id=plan_id).first()
        if plan is not None:
            subscription.plan = plan
        else:
            logger.warning("Razorpay subscription %s moved to unknown plan %s", entity.get("id"), plan_id)


def timestamp(value) -> datetime | None:
    """Razorpay's unix seconds as an aware datetime (None for anything else, including NaN
    and values beyond the years 1-9999 a datetime holds)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _lock(organization: Organization) -> None:
    # One billing change per organization at a time: two subscribe clicks must not create
    # two Razorpay subscriptions.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
