"""Plan quotas, checked and reserved atomically; the interface other apps call:

- reserve_messages(organization, count=1): inside the caller's transaction, before any row
  is written; raises raptorflow.errors.PaymentRequired (402 quota_exceeded) when over quota.
- reserve_reply_tokens(organization, tokens) -> ReplyTokenReservation: before a chat
  provider is called, holds the reply's largest possible size (raises PaymentRequired once
  the period's reply tokens are used up); extend_reply_tokens(reservation, tokens) grows
  the hold, settle_reply_tokens(reservation, used) replaces it with what the provider
  reported (0 when nothing was produced), releasing the rest.
- require_reply_tokens(organization): checks (without reserving) that reply tokens remain.
- record_reply_tokens(organization, tokens): counts tokens used without a reservation.
- record_embeddings(organization, count): automatic embeddings are counted, never refused.
- require_messages(organization, count): checks (without reserving) that `count` more
  messages fit, e.g. a reply's question and answer before the question is stored.
- record_messages(organization, count): counts messages without refusing them (a reply's
  answer, whose room was checked before anything was written).
- require_document_room(organization, documents=, bytes=, adding_bytes=): refuses an upload
  past the plan's documents or stored bytes (402 quota_exceeded with `limit`). Those are
  standing totals the documents app counts itself, under a lock on the organization's row
  taken in the upload's transaction, so concurrent uploads queue and each sees the others.

Counters live in one billing.Usage row per (organization, period) and only change through
single UPDATE statements, so concurrent requests never lose or overrun a count.
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from billing import selectors
from billing.models import ENTITLED_STATUSES, FREE_PLAN_CODE, Plan, Subscription, Usage
from raptorflow.errors import PaymentRequired


def _iso(moment) -> str:
    """As the API writes times (DRF's DateTimeField: UTC, ISO 8601, "Z"), without making
    the domain layer import the framework."""
    text = timezone.localtime(moment, timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_USAGE, _SUBSCRIPTION, _PLAN = Usage._meta.db_table, Subscription._meta.db_table, Plan._meta.db_table
# selectors.entitlement() and the reservation in one statement: the entitled subscription
# (at most one: one live subscription per organization) gives its plan's limit over its
# current period, otherwise the free plan (its row, else the FREE_PLAN_MESSAGES setting)
# over the calendar month; then the period's row is created or its counter grown, only if
# the messages still fit. No row returned: refused. tests/billing/test_quotas.py
# holds it to entitlement().
_RESERVE_MESSAGES = f"""
WITH entitled AS (
    SELECT s.current_start, s.current_end, p.message_quota
    FROM {_SUBSCRIPTION} s JOIN {_PLAN} p ON p.id = s.plan_id
    WHERE s.organization_id = %(organization)s AND s.status = ANY(%(entitled)s)
    LIMIT 1
), current_period AS (
    SELECT
        CASE WHEN e.current_start <= %(now)s AND %(now)s < e.current_end
             THEN e.current_start ELSE %(month_start)s END AS period_start,
        CASE WHEN e.current_start <= %(now)s AND %(now)s < e.current_end
             THEN e.current_end ELSE %(month_end)s END AS period_end,
        COALESCE(
            e.message_quota,
            (SELECT message_quota FROM {_PLAN} WHERE code = %(free_code)s),
            %(free_messages)s
        ) AS messages_limit
    FROM (SELECT 1) AS one LEFT JOIN entitled e ON true
)
INSERT INTO {_USAGE} (organization_id, period_start, period_end, messages, reply_tokens, embeddings,
                      created_at, updated_at)
SELECT %(organization)s, period_start, period_end, %(count)s, 0, 0, %(now)s, %(now)s
FROM current_period WHERE %(count)s <= messages_limit
ON CONFLICT (organization_id, period_start) DO UPDATE
    SET messages = {_USAGE}.messages + EXCLUDED.messages, updated_at = EXCLUDED.updated_at
    WHERE {_USAGE}.messages + EXCLUDED.messages <= (SELECT messages_limit FROM current_period)
RETURNING messages
"""  # noqa: S608 - table names are our own models', not input


def reserve_messages(organization, count: int = 1) -> None:
    """Counts `count` messages against the current period, or refuses them all.
    `organization` is an Organization or its id.

    One statement, the entitlement read included (_RESERVE_MESSAGES). Runs in the caller's
    transaction: if the caller rolls back, so does the reservation. The row lock it takes
    is held until the caller commits, so concurrent writers of one organization queue here
    and each sees the others' committed count — at quota − 1, exactly one of them gets
    through. Only a refusal reads the entitlement again, for its message."""
    if count <= 0:
        raise ValueError("count must be positive")
    organization_id = getattr(organization, "pk", organization)
    now = timezone.now()
    month_start, month_end = selectors.calendar_month(now)
    with connection.cursor() as cursor:
        cursor.execute(
            _RESERVE_MESSAGES,
            {
                "organization": organization_id,
                "entitled": [str(status) for status in ENTITLED_STATUSES],
                "now": now,
                "month_start": month_start,
                "month_end": month_end,
                "free_code": FREE_PLAN_CODE,
                "free_messages": settings.FREE_PLAN_MESSAGES,
                "count": count,
            },
        )
        reserved = cursor.fetchone()
    if reserved is None:
        raise _messages_refused(selectors.entitlement(organization_id, now=now))


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
    """Refuses a reply once the period's reply tokens are used up. Only checks: the reply
    endpoint then reserves (reserve_reply_tokens), which is what holds under concurrency."""
    current = selectors.entitlement(organization)
    usage = selectors.usage_for_period(organization, current.period_start)
    used = usage.reply_tokens if usage else 0
    if current.reply_tokens_limit - used <= 0:
        raise _reply_tokens_refused(current)


@dataclass
class ReplyTokenReservation:
    """Reply tokens held in one period's counter for a reply being generated."""

    organization_id: object
    period_start: datetime
    tokens: int
    settled: bool = False


def reserve_reply_tokens(organization, tokens: int) -> ReplyTokenReservation:
    """Adds `tokens` (the reply's largest possible size) to the period's reply tokens while
    some remain, or refuses the reply (PaymentRequired, 402 quota_exceeded).

    One conditional UPDATE: concurrent replies queue on the row and each sees the others'
    holds, so once the counter reaches the limit every further reply is refused until a
    hold is settled. A reply may still end past the limit by its own size (it starts while
    tokens remain), never by the size of the replies running beside it.
    Commits with the caller's transaction; settle_reply_tokens must follow in every case."""
    if tokens <= 0:
        raise ValueError("tokens must be positive")
    current = selectors.entitlement(organization)
    _ensure_row(organization, current)
    reserved = Usage.objects.filter(
        organization=organization, period_start=current.period_start, reply_tokens__lt=current.reply_tokens_limit
    ).update(reply_tokens=F("reply_tokens") + tokens, updated_at=timezone.now())
    if not reserved:
        raise _reply_tokens_refused(current)
    return ReplyTokenReservation(organization_id=organization.pk, period_start=current.period_start, tokens=tokens)


def extend_reply_tokens(reservation: ReplyTokenReservation, tokens: int) -> None:
    """Grows a hold already granted (the prompt turned out longer than first counted)."""
    if reservation.settled or tokens <= 0:
        return
    _reservation_row(reservation).update(reply_tokens=F("reply_tokens") + tokens, updated_at=timezone.now())
    reservation.tokens += tokens


def settle_reply_tokens(reservation: ReplyTokenReservation, used: int) -> None:
    """Replaces the hold with the tokens the reply used, in the period it was reserved in
    (once; later calls do nothing)."""
    if reservation.settled:
        return
    # Greatest(…, 0): never below zero, should an operator have reset the counter meanwhile.
    _reservation_row(reservation).update(
        reply_tokens=Greatest(F("reply_tokens") + Value(max(used, 0) - reservation.tokens), Value(0)),
        updated_at=timezone.now(),
    )
    reservation.settled = True


def _reservation_row(reservation: ReplyTokenReservation):
    return Usage.objects.filter(organization_id=reservation.organization_id, period_start=reservation.period_start)


def _reply_tokens_refused(current: selectors.Entitlement) -> PaymentRequired:
    limit = current.reply_tokens_limit
    return PaymentRequired(
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
        [
            Usage(
                organization_id=getattr(organization, "pk", organization),
                period_start=current.period_start,
                period_end=current.period_end,
            )
        ],
        ignore_conflicts=True,
    )


def require_document_room(organization, *, documents: int, stored_bytes: int, adding_bytes: int) -> None:
    """Refuses one more document of `adding_bytes` when the organization already keeps
    `documents` documents of `stored_bytes` in all and the plan allows no more."""
    current = selectors.entitlement(organization)
    plan = current.plan
    if documents + 1 > plan.documents_limit:
        raise PaymentRequired(
            f"This organization keeps {documents} documents, the most the {plan.name} plan allows.",
            limit=plan.documents_limit,
            resets_at=None,
            quota="documents",
        )
    if stored_bytes + adding_bytes > plan.document_bytes_limit:
        raise PaymentRequired(
            f"This file would take the organization's documents past the {plan.document_bytes_limit} bytes "
            f"the {plan.name} plan allows ({stored_bytes} bytes are stored).",
            limit=plan.document_bytes_limit,
            resets_at=None,
            quota="document_bytes",
        )
