"""A streamed reply is generated apart from the request that asked for it, so that a client
that disconnects (a refreshed tab, a proxy cutting the stream) loses nothing: the reply is
completed and stored, and its events stay readable (rag/reply_events.py) for a resume.

    reply_id = start(prepared)     # in the request, after rag.replies.reply_prepare

`start` writes the `context` event (with the reply's id) and hands the reply over to:
- a Celery worker (rag.tasks.generate_reply) when a broker is configured and the events
  live in Redis (REDIS_URL), where any instance can read them — on Cloud Run a request's
  CPU is throttled once its response ends, so the work must not stay in the web process;
- a worker thread of this process otherwise (the embedded default).

The job is a plain JSON payload (`ReplyJob`): the question, the prompt as it was built,
its sources and the quota reservation and Idempotency-Key lease to give back, so a worker
on another machine generates exactly what the request prepared. Whoever runs it owns the
reservation and the lease from then on and gives them back however the reply ends.

The job writes `delta` events as the provider sends them and ends with `done` (the stored
reply) or `error`: before the first delta (every provider failed; nothing stored, and the
request that is still waiting answers a plain 503/502), mid-reply (what arrived is stored
with generation.status "incomplete"), or cancelled (POST …/replies/{id}/cancel: what was
written is stored as "cancelled").
"""

import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connections

from billing import quotas
from conversations.models import Conversation, GenerationStatus
from conversations.serializers import MessageSerializer
from rag import selectors
from rag.chat_providers import ProviderError, ReplyStream, chat_providers
from rag.context import AugmentedPrompt, context_messages, source_entry
from rag.document_context import context_chunks
from rag.replies import PreparedReply, reply_store, stream_attach_key
from rag.reply_events import ReplyOwner, event_log
from rag.serializers import ContextItemSerializer, ReplyUsageSerializer
from raptorflow import audit
from raptorflow.errors import Conflict, DomainError, NotFound
from raptorflow.request_context import request_id_of

logger = logging.getLogger(__name__)

CANCELLED_MESSAGE = "The reply was cancelled."


@dataclass
class ReplyJob:
    reply_id: str
    conversation_id: str
    user_message_id: str
    idempotency_key: str | None
    fingerprint: str
    query: str
    system_prompt: str
    full_prompt: str
    token_count: int
    token_budget: int
    sources: list[dict]
    reservation: dict | None
    lease: list[str] | None
    # Wall-clock start, so the stored response time counts from the request.
    started_at: float


def uses_celery() -> bool:
    return bool(settings.CELERY_BROKER_URL and settings.REDIS_URL)


def start(prepared: PreparedReply) -> str:
    """Starts generating the prepared reply apart from this request; its id. From here the
    job owns the reservation and the Idempotency-Key lease of `prepared`."""
    reply_id = str(uuid.uuid4())
    log = event_log()
    conversation = prepared.conversation
    log.create(
        reply_id,
        ReplyOwner(
            conversation_id=str(conversation.pk),
            user_id=str(conversation.owner_id),
            organization_id=str(conversation.organization_id),
        ),
    )
    log.append(
        reply_id,
        "context",
        {
            "reply_id": reply_id,
            "user_message": MessageSerializer(prepared.user_message).data,
            "context": ContextItemSerializer(prepared.context, many=True).data,
        },
    )
    if prepared.idempotency_key is not None:
        # A retry with the same key while this runs attaches to these events.
        cache.set(
            stream_attach_key(conversation.pk, prepared.idempotency_key),
            {"reply_id": reply_id, "fingerprint": prepared.fingerprint},
            settings.REPLY_EVENTS_TTL_SECONDS,
        )
    job = _job(reply_id, prepared)
    # The job gives them back now, not this request.
    prepared.reservation, prepared.lease = None, None
    payload = asdict(job)
    if uses_celery():
        from rag.tasks import generate_reply

        generate_reply.apply_async(args=[payload], retry=True, retry_policy={"max_retries": 2, "interval_start": 0.1})
    else:
        context = audit.current()
        thread = threading.Thread(
            target=_run_in_thread, args=(payload, context), name=f"reply-{reply_id[:8]}", daemon=True
        )
        thread.start()
    return reply_id


def require_reply(reply_id, *, conversation: Conversation) -> str:
    """`reply_id` if it is a reply of `conversation` (already scoped to the caller) whose
    events are still kept; NotFound otherwise — for another's reply as for an expired one."""
    reply_id = str(reply_id)
    owner = event_log().owner(reply_id)
    if owner is None or owner.conversation_id != str(conversation.pk) or owner.user_id != str(conversation.owner_id):
        raise NotFound("No such reply in this conversation (or its events have expired).")
    return reply_id


def cancel(reply_id: str) -> None:
    """Asks the reply's generator to stop at its next delta and store what it wrote with
    status cancelled. Conflict when the reply has ended already."""
    log = event_log()
    last = log.last(reply_id)
    if last is not None and last.terminal:
        raise Conflict("This reply has ended already; there is nothing to cancel.", code="reply_finished")
    log.request_cancel(reply_id)


def _job(reply_id: str, prepared: PreparedReply) -> ReplyJob:
    augmented = prepared.augmented
    reservation = prepared.reservation
    return ReplyJob(
        reply_id=reply_id,
        conversation_id=str(prepared.conversation.pk),
        user_message_id=str(prepared.user_message.pk),
        idempotency_key=prepared.idempotency_key,
        fingerprint=prepared.fingerprint,
        query=augmented.query,
        system_prompt=augmented.system_prompt,
        full_prompt=augmented.full_prompt,
        token_count=augmented.token_count,
        token_budget=augmented.token_budget,
        # Every numbered source, messages and document chunks, as the stored reply keeps them.
        sources=[source_entry(source) for source in augmented.sources],
        reservation=None
        if reservation is None
        else {
            "organization_id": str(reservation.organization_id),
            "period_start": reservation.period_start.isoformat(),
            "tokens": reservation.tokens,
        },
        lease=list(prepared.lease) if prepared.lease else None,
        started_at=time.time() - (time.monotonic() - prepared.started),
    )


def _run_in_thread(payload: dict, context: audit.AuditContext) -> None:
    try:
        with audit.restored(context), request_id_of(context):
            run(payload)
    finally:
        # This thread's own connections: never left open.
        connections.close_all()


def run(payload: dict) -> None:
    """Generates the reply of `payload` (a ReplyJob as a dict), writing its events. The
    reservation and the Idempotency-Key are given back before the last event is written, so
    a client that has seen the end and retries finds the key free (or the stored reply)."""
    job = ReplyJob(**payload)
    log = event_log()
    prepared = None
    try:
        prepared = _prepared(job)
        last = _generate(job, prepared, log)
    except Exception as exc:
        logger.exception("Reply %s failed", job.reply_id)
        code = exc.code if isinstance(exc, DomainError) else "reply_failed"
        message = exc.message if isinstance(exc, DomainError) else "The reply could not be completed."
        last = ("error", {"code": code, "message": message, "partial_message": None})
    finally:
        if prepared is not None:
            prepared.release()
        else:
            _release(job)
    log.append(job.reply_id, *last)


def _prepared(job: ReplyJob) -> PreparedReply:
    conversation = Conversation.objects.select_related("owner", "organization").get(pk=job.conversation_id)
    user, organization = conversation.owner, conversation.organization
    user_message = conversation.messages.get(pk=job.user_message_id)
    augmented = AugmentedPrompt(
        query=job.query,
        conversation_id=conversation.pk,
        system_prompt=job.system_prompt,
        full_prompt=job.full_prompt,
        messages=tuple(context_messages(user=user, organization=organization, entries=job.sources)),
        chunks=tuple(context_chunks(user=user, organization=organization, entries=job.sources)),
        token_count=job.token_count,
        token_budget=job.token_budget,
    )
    prepared = PreparedReply(
        conversation=conversation,
        user=user,
        organization=organization,
        user_message=user_message,
        idempotency_key=job.idempotency_key,
        fingerprint=job.fingerprint,
        augmented=augmented,
        started=time.monotonic() - max(0.0, time.time() - job.started_at),
        reservation=_reservation(job),
        lease=tuple(job.lease) if job.lease else None,
    )
    prepared.providers = chat_providers(selectors.chat_api_keys(organization=organization))
    return prepared


def _reservation(job: ReplyJob) -> quotas.ReplyTokenReservation | None:
    if job.reservation is None:
        return None
    return quotas.ReplyTokenReservation(
        organization_id=uuid.UUID(job.reservation["organization_id"]),
        period_start=datetime.fromisoformat(job.reservation["period_start"]),
        tokens=job.reservation["tokens"],
    )


def _release(job: ReplyJob) -> None:
    """What a job that could not even be rebuilt still holds."""
    reservation = _reservation(job)
    if reservation is not None:
        quotas.settle_reply_tokens(reservation, 0)
    if job.lease:
        key, token = job.lease
        if cache.get(key) == token:
            cache.delete(key)


def _generate(job: ReplyJob, prepared: PreparedReply, log) -> tuple[str, dict]:
    """Writes the deltas; the last event (name, data), for run() to write."""
    reply_id = job.reply_id
    stream = ReplyStream(prepared.providers, prepared.augmented.chat_messages())
    try:
        stream.start()
    except DomainError as exc:
        # No provider produced a first word: nothing to store (the question is kept).
        return "error", {"code": exc.code, "message": exc.message, "partial_message": None, "before_first_delta": True}
    written: list[str] = []
    try:
        for delta in stream:
            if log.cancel_requested(reply_id):
                stream.close()
                partial = _store_partial(
                    prepared, "".join(written), GenerationStatus.CANCELLED, "cancelled", CANCELLED_MESSAGE, stream
                )
                return "error", _error_data("cancelled", CANCELLED_MESSAGE, partial)
            log.append(reply_id, "delta", {"text": delta})
            written.append(delta)
    except ProviderError as exc:
        code = "upstream_unavailable" if exc.retryable else "upstream_bad_response"
        message = f"The chat provider failed mid-reply: {exc.provider} {exc.reason}."
        partial = _store_partial(prepared, "".join(written), GenerationStatus.INCOMPLETE, code, message, stream)
        return "error", _error_data(code, message, partial)
    usage = stream.usage
    try:
        message = reply_store(
            prepared=prepared,
            text=stream.text,
            provider=stream.provider,
            model=stream.model,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
        )
    except DomainError as exc:
        # E.g. the conversation was archived or deleted while the reply was generated.
        return "error", _error_data(exc.code, exc.message, None)
    usage_data = ReplyUsageSerializer(message.generation["usage"]).data
    return "done", {"message": MessageSerializer(message).data, "usage": usage_data}


def _error_data(code: str, message: str, partial) -> dict:
    partial_message = MessageSerializer(partial).data if partial is not None else None
    return {"code": code, "message": message, "partial_message": partial_message}


def _store_partial(prepared: PreparedReply, text: str, status: str, code: str, error: str, stream: ReplyStream):
    """What the client was sent, stored with `status`; nothing when nothing was sent."""
    if not text:
        return None
    return reply_store(
        prepared=prepared,
        text=text,
        provider=stream.provider,
        model=stream.model,
        prompt_tokens=None,
        completion_tokens=None,
        status=status,
        error_code=code,
        error=error,
    )
