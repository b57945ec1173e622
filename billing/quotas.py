"""Plan quotas, checked and reserved atomically; the interface other apps call:

- reserve_messages(organization, count=1): inside the caller's transaction, before any row
  is written; raises raptorflow.errors.PaymentRequired (402 quota_exceeded) when over quota.
- require_reply_tokens(organization): before a chat provider is called.
- record_reply_tokens(organization, tokens): after the provider reported its usage.
- record_embeddings(organization, count): automatic embeddings are counted, never refused.
- require_messages(organization, count): checks (without reserving) that `count` more
  messages fit, e.g. a reply's question and answer before the question is stored.
- record_messages(organization, count): counts messages without refusing them (a reply's
  answer, whose room was checked before anything was written).

Counters live in one billing.Usage row per (organization, period) and only change through
single UPDATE statements, so concurrent requests never lose or overrun a count.
"""

from django.db.models import F
from django.utils import timezone
from rest_framework.fields import DateTimeField

from billing import selectors
from billing.models import Usage
from raptorflow.errors import PaymentRequired

_iso = DateTimeField().to_representation


def reserve_messages(organization, count: int = 1) -> None:
    """Counts `count` messages against the current period, or refuses them all.

    Runs in the caller's transaction: if the caller rolls back, so does the reservation.
    The row lock this UPDATE takes is held until the caller commits, so concurrent writers
    of one organization queue here and each sees the others' committed count — at
    quota − 1, exactly one of them gets through."""
    if count <= 0:
        raise ValueError("count must be positive")
    current = selectors.entitlement(organization)
    limit = current.messages_limit
    _ensure_row(organization, current)
    reserved = (
        Usage.objects.filter(
            organization=organization, period_start=current.period_start, messages__lte=limit - count
        ).update(messages=F("messages") + count, updated_at=timezone.now())
        if count <= limit
        else 0
    )
    if not reserved:
        raise _messages_refused(current)


def require_messages(organization, count: int) -> None:
    current = selectors.entitlement(organization)
    usage = selectors.usage_for_period(organization, current.period_start)
    used = usage.messages if usage else 0
    if used + count > current.messages_limit:
        raise _messages_refused(current)


def record_messages(organization, count: int) -> None:
    _add(organization, messages=count)


def _messages_refused(current: selectors.Entitlement) -> PaymentRequired:
    return PaymentRequired(
        f"This organization has used its {current.messages_limit} messages of the {current.plan.name} plan "
        "for this period.",
        limit=current.messages_limit,
        resets_at=_iso(current.period_end),
        quota="messages",
    )


def require_reply_tokens(organization) -> None:
    """Refuses a reply once the period's reply tokens are used up. Only checks: the
    provider's reported usage is recorded afterwards by record_reply_tokens (a reply may
    overshoot the quota by its own size, never start past it)."""
    current = selectors.entitlement(organization)
    limit = current.reply_tokens_limit
    usage = selectors.usage_for_period(organization, current.period_start)
    used = usage.reply_tokens if usage else 0
    if limit - used <= 0:
        raise PaymentRequired(
            f"This organization has used its {limit} AI reply tokens of the {current.plan.name} plan for this period.",
            limit=limit,
            resets_at=_iso(current.period_end),
            quota="reply_tokens",
        )


def record_reply_tokens(organization, tokens: int) -> None:
    _add(organization, reply_tokens=tokens)


def record_embeddings(organization, count: int) -> None:
    _add(organization, embeddings=count)


def _add(organization, **amounts: int) -> None:
    amounts = {field: amount for field, amount in amounts.items() if amount and amount > 0}
    if not amounts:
        return
    current = selectors.entitlement(organization)
    _ensure_row(organization, current)
    Usage.objects.filter(organization=organization, period_start=current.period_start).update(
        updated_at=timezone.now(), **{field: F(field) + amount for field, amount in amounts.items()}
    )


def _ensure_row(organization, current: selectors.Entitlement) -> None:
    # INSERT … ON CONFLICT DO NOTHING: a concurrent creator makes this wait for its commit
    # instead of failing, and no savepoint is needed inside the caller's transaction.
    Usage.objects.bulk_create(
        [Usage(organization=organization, period_start=current.period_start, period_end=current.period_end)],
        ignore_conflicts=True,
    )
