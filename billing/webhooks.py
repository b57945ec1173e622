"""Applying Razorpay webhook events (the signature is checked by the view first).

Each event is stored once in WebhookEvent, in the same transaction as its effect: a
redelivery hits the unique event id and changes nothing, and an effect that fails rolls the
event back so Razorpay's retry gets another chance. Events are ordered by their own
created_at, never by arrival: an older one never moves a subscription back.
"""

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import FINAL_STATUSES, Subscription, SubscriptionStatus, WebhookEvent, WebhookOutcome
from billing.services import apply_entity, timestamp
from raptorflow import audit

logger = logging.getLogger(__name__)

SUBSCRIPTION_EVENTS = frozenset(
    {
        "subscription.authenticated",
        "subscription.activated",
        "subscription.charged",
        "subscription.pending",
        "subscription.halted",
        "subscription.cancelled",
        "subscription.completed",
        "subscription.updated",
        "subscription.paused",
        "subscription.resumed",
    }
)
PAYMENT_FAILED = "payment.failed"
DUPLICATE = "duplicate"

# Only breaks ties between events of the same second: the later stage of a subscription's
# life wins (activated and charged often share a timestamp).
_STAGE = {
    SubscriptionStatus.CREATED: 0,
    SubscriptionStatus.AUTHENTICATED: 1,
    SubscriptionStatus.ACTIVE: 2,
    SubscriptionStatus.PAUSED: 2,
    SubscriptionStatus.PENDING: 3,
    SubscriptionStatus.HALTED: 4,
    **{status: 5 for status in FINAL_STATUSES},
}


def handle_event(*, event_id: str, payload: dict) -> str:
    """Applies one verified event and answers its outcome: applied, stale, ignored or
    duplicate."""
    name = payload.get("event")
    created_at = timestamp(payload.get("created_at")) or timezone.now()
    subscription_entity = _entity(payload, "subscription")
    payment_entity = _entity(payload, "payment")
    razorpay_subscription_id = _subscription_id(subscription_entity, payment_entity)

    with transaction.atomic():
        try:
            with transaction.atomic():
                event = WebhookEvent.objects.create(
                    event_id=event_id,
                    event=str(name)[:64],
                    created_at=created_at,
                    razorpay_subscription_id=razorpay_subscription_id[:64],
                    outcome=WebhookOutcome.IGNORED,
                    payload=payload,
                )
        except IntegrityError:
            # Seen before (a concurrent delivery waits here until the first one commits).
            logger.info("Razorpay event %s (%s) already handled", event_id, name)
            return DUPLICATE

        subscription = (
            Subscription.objects.select_for_update()
            .select_related("organization", "plan")
            .filter(razorpay_subscription_id=razorpay_subscription_id)
            .first()
            if razorpay_subscription_id
            else None
        )
        if name in SUBSCRIPTION_EVENTS and subscription is not None and subscription_entity is not None:
            outcome = _apply_subscription_event(subscription, subscription_entity, name=name, at=created_at)
        elif name == PAYMENT_FAILED and subscription is not None and payment_entity is not None:
            outcome = _apply_payment_failed(subscription, payment_entity, at=created_at)
        else:
            logger.info(
                "Razorpay event %s (%s) acknowledged without effect: %s",
                event_id,
                name,
                "no subscription of ours" if name in SUBSCRIPTION_EVENTS | {PAYMENT_FAILED} else "not handled",
            )
            outcome = WebhookOutcome.IGNORED
        event.outcome = outcome
        event.save(update_fields=["outcome"])
        return outcome


def _apply_subscription_event(subscription: Subscription, entity: dict, *, name: str, at) -> str:
    status = entity.get("status")
    if _is_stale(subscription, status, at):
        logger.info("Razorpay event %s for %s is older than its state; skipped", name, subscription.pk)
        return WebhookOutcome.STALE
    before = (subscription.status, subscription.plan_id)
    apply_entity(subscription, entity)
    subscription.last_event_at = at
    subscription.save()
    if (subscription.status, subscription.plan_id) != before:
        audit.record(
            "billing.subscription_changed",
            organization=subscription.organization,
            target=subscription,
            event=name,
            status=subscription.status,
            previous_status=before[0],
            plan=subscription.plan.code,
        )
    return WebhookOutcome.APPLIED


def _apply_payment_failed(subscription: Subscription, payment: dict, *, at) -> str:
    # The status change (pending, halted) comes with its own subscription event; this
    # keeps the reason to show the customer.
    if subscription.last_payment_failed_at is not None and at < subscription.last_payment_failed_at:
        return WebhookOutcome.STALE
    description = payment.get("error_description")
    subscription.last_payment_failed_at = at
    subscription.last_payment_error = (description if isinstance(description, str) else "Payment failed.")[:500]
    subscription.save(update_fields=["last_payment_failed_at", "last_payment_error", "updated_at"])
    audit.record(
        "billing.payment_failed",
        organization=subscription.organization,
        target=subscription,
        payment_id=str(payment.get("id", "")),
        error=subscription.last_payment_error,
    )
    return WebhookOutcome.APPLIED


def _is_stale(subscription: Subscription, status, at) -> bool:
    if subscription.is_final and status != subscription.status:
        return True
    if subscription.last_event_at is None or at > subscription.last_event_at:
        return False
    if at < subscription.last_event_at:
        return True
    return _STAGE.get(status, -1) < _STAGE[subscription.status]


def _entity(payload: dict, name: str) -> dict | None:
    wrapper = payload.get("payload")
    holder = wrapper.get(name) if isinstance(wrapper, dict) else None
    entity = holder.get("entity") if isinstance(holder, dict) else None
    return entity if isinstance(entity, dict) else None


def _subscription_id(subscription_entity: dict | None, payment_entity: dict | None) -> str:
    """The subscription an event is about: its own entity, or (for a payment) the
    subscription Razorpay names on it."""
    for candidate in (
        (subscription_entity or {}).get("id"),
        (payment_entity or {}).get("subscription_id"),
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return ""
