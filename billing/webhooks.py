"""Applying Razorpay webhook events (the signature is checked by the view first).

Each event is stored once in WebhookEvent, in the same transaction as its effect: a
redelivery hits the unique event id or the unique hash of its signed body (the event id
header is not signed) and changes nothing, and an effect that fails rolls the event back so
Razorpay's retry gets another chance. Events are ordered by their own created_at, never by
arrival: an older one never moves a subscription back.

A signed event whose values cannot be used (NaN or out-of-range timestamps, NUL characters
or lone surrogates, which PostgreSQL cannot store, nesting deeper than MAX_DEPTH) is
acknowledged and stored as ignored with the reason, never answered with an error: Razorpay
retries anything but a 2xx and then disables the webhook, and a retry would not change it.
"""

import hashlib
import json
import logging
import math

from django.db import DataError, IntegrityError, transaction
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
# As deep as any request body may nest (SPEC §4); Razorpay's events nest four levels.
MAX_DEPTH = 64
_TIMESTAMP_FIELDS = ("current_start", "current_end", "charge_at", "ended_at")
_PAID_COUNT_MAX = 2**31 - 1  # Subscription.paid_count's column


class NotAnEvent(ValueError):
    """A signed body that is not a Razorpay event at all (not JSON, not an object naming an
    event): a 400, as Razorpay never sends one."""


def receive(*, body: bytes, event_id: str) -> str:
    """Handles one signed webhook body and answers its outcome (applied, stale, ignored or
    duplicate). `event_id` is Razorpay's X-Razorpay-Event-Id header (may be empty)."""
    body_sha256 = hashlib.sha256(body).hexdigest()
    # Razorpay names each event in the header; the body's hash stands in without it.
    event_id = _storable(event_id).strip()[:100] or f"sha256:{body_sha256}"
    try:
        payload = json.loads(body)
    except RecursionError:
        return _ignore(event_id, body_sha256, body, name="", reason=f"nested deeper than {MAX_DEPTH} levels")
    except ValueError:
        raise NotAnEvent("The webhook body is not JSON.") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        raise NotAnEvent("The webhook body is not a Razorpay event.")
    if reason := unusable(payload):
        return _ignore(event_id, body_sha256, body, name=payload["event"], reason=reason)
    try:
        return handle_event(event_id=event_id, body_sha256=body_sha256, payload=payload)
    except (DataError, ValueError, TypeError, OverflowError) as exc:
        # A value nothing above foresaw: acknowledged (a retry would fail the same way) and
        # kept, with the traceback in the log, for an operator to look at.
        logger.exception("Razorpay event %s (%s) could not be applied", event_id, _storable(payload["event"]))
        reason = f"could not be applied: {type(exc).__name__}"
        return _ignore(event_id, body_sha256, body, name=payload["event"], reason=reason)


def unusable(payload: dict) -> str:
    """Why a parsed event cannot be applied or stored as it is ("" when it can)."""
    if "created_at" in payload and _bad_timestamp(payload["created_at"]):
        return "created_at is not a usable timestamp"
    for entity in (_entity(payload, "subscription"), _entity(payload, "payment")):
        for field in _TIMESTAMP_FIELDS:
            if entity is not None and _bad_timestamp(entity.get(field)):
                return f"{field} is not a usable timestamp"
    paid_count = (_entity(payload, "subscription") or {}).get("paid_count")
    if isinstance(paid_count, int) and paid_count > _PAID_COUNT_MAX:
        return "paid_count is out of range"
    stack = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(value, dict):
            stack.extend((key, depth) for key in value)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            if "\x00" in value:
                return "a string holds a NUL character"
            if _storable(value) != value:
                return "a string holds a lone surrogate"
        elif isinstance(value, float) and not math.isfinite(value):
            return "a number is NaN or infinite"
    return ""


def _bad_timestamp(value) -> bool:
    """A number that is no datetime (NaN, infinite, too large or small); None and other
    types are Razorpay's "not set" and handled where they are read."""
    return isinstance(value, int | float) and not isinstance(value, bool) and timestamp(value) is None


def _storable(text: str) -> str:
    """`text` without what a PostgreSQL text column refuses: lone surrogates (which do not
    encode as UTF-8) become "?", NUL characters U+FFFD."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def _ignore(event_id: str, body_sha256: str, body: bytes, *, name: str, reason: str) -> str:
    """Stores a signed event that cannot be applied as ignored, with the reason and the start
    of its raw body (as text) for an operator; a redelivery of it is a duplicate."""
    try:
        with transaction.atomic():
            WebhookEvent.objects.create(
                event_id=event_id,
                body_sha256=body_sha256,
                event=_storable(name)[:64],
                created_at=timezone.now(),
                outcome=WebhookOutcome.IGNORED,
                reason=reason[:200],
                payload={"raw": _storable(body[:2000].decode("utf-8", "replace"))},
            )
    except IntegrityError:
        logger.info("Razorpay event %s already handled", event_id)
        return DUPLICATE
    logger.warning("Razorpay event %s (%s) ignored: %s", event_id, _storable(name)[:64], reason)
    return WebhookOutcome.IGNORED


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


def handle_event(*, event_id: str, body_sha256: str, payload: dict) -> str:
    """Applies one verified, usable event and answers its outcome: applied, stale, ignored
    or duplicate."""
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
                    body_sha256=body_sha256,
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
