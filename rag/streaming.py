"""Server-sent events of a streamed reply, from a sync generator (the app stays WSGI).

Events, each `event: <name>` + `data: <json>`:
- `context`: {user_message, context}         first, before the model's first word
- `delta`:   {text}                           as the provider sends them, unbuffered
- `done`:    {message, usage}                 the stored assistant message
- `error`:   {code, message, partial_message} the provider failed mid-stream; what arrived
                                              is stored with generation.status = "incomplete"

A client that disconnects mid-stream (the server closes this generator: GeneratorExit)
also gets its partial reply stored as incomplete; the user message is never lost. A retry
with the same Idempotency-Key replays the stored reply: `context`, one `delta`, then `done`
— or, for a reply stored incomplete, the `error` it ended with, so a partial reply is never
presented as whole. However the stream ends, the reply's token reservation and its
Idempotency-Key are given back (PreparedReply.release, also when the response is closed
before the generator ran).
"""

import json
import logging
from collections.abc import Iterator

from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse

from conversations.models import GenerationStatus
from conversations.serializers import MessageSerializer
from rag.chat_providers import ProviderError, ReplyStream
from rag.replies import PreparedReply, reply_store
from rag.serializers import ContextItemSerializer, ReplyUsageSerializer
from raptorflow.errors import DomainError

logger = logging.getLogger(__name__)

DISCONNECTED = "The client disconnected before the reply was complete."


class EventStreamResponse(StreamingHttpResponse):
    """Server-sent events that run `on_close` when the server closes the response —
    after the last event, on a disconnect, or without the events ever being read."""

    def __init__(self, events: Iterator[str], *, on_close):
        super().__init__(events, content_type="text/event-stream; charset=utf-8")
        self._on_close = on_close
        self["Cache-Control"] = "no-cache"
        # Tells nginx-style proxies not to buffer the stream.
        self["X-Accel-Buffering"] = "no"

    def close(self):
        try:
            super().close()
        finally:
            self._on_close()


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, cls=DjangoJSONEncoder)}\n\n"


def _context_event(prepared: PreparedReply) -> str:
    return sse(
        "context",
        {
            "user_message": MessageSerializer(prepared.user_message).data,
            "context": ContextItemSerializer(prepared.context, many=True).data,
        },
    )


def _done_event(message) -> str:
    usage = ReplyUsageSerializer(message.generation["usage"]).data
    return sse("done", {"message": MessageSerializer(message).data, "usage": usage})


def _error_event(code: str, message: str, partial) -> str:
    partial_message = MessageSerializer(partial).data if partial is not None else None
    return sse("error", {"code": code, "message": message, "partial_message": partial_message})


def replay_events(prepared: PreparedReply) -> Iterator[str]:
    """An Idempotency-Key retry of a streamed reply: the stored answer as one delta, ended
    as the first stream ended (`done`, or `error` with the partial reply)."""
    reply = prepared.existing_reply
    yield _context_event(prepared)
    yield sse("delta", {"text": reply.content})
    if reply.generation.get("status") == GenerationStatus.COMPLETE:
        yield _done_event(reply)
    else:
        error = reply.generation.get("error") or {}
        yield _error_event(
            error.get("code", "reply_interrupted"), error.get("message", "The reply was interrupted."), reply
        )


def reply_events(prepared: PreparedReply, stream: ReplyStream) -> Iterator[str]:
    """`stream` has been started (its first delta is waiting), so provider selection and
    fallback errors were answered as plain HTTP errors before this generator runs."""
    finished = False
    try:
        yield _context_event(prepared)
        try:
            for delta in stream:
                yield sse("delta", {"text": delta})
        except ProviderError as exc:
            code = "upstream_unavailable" if exc.retryable else "upstream_bad_response"
            message = f"The chat provider failed mid-reply: {exc.provider} {exc.reason}."
            partial = _store_partial(prepared, stream, code, message)
            finished = True
            yield _error_event(code, message, partial)
            return
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
            # E.g. the conversation was archived or deleted while the reply streamed.
            finished = True
            yield _error_event(exc.code, exc.message, None)
            return
        finished = True
        yield _done_event(message)
    except GeneratorExit:
        if not finished:
            stream.close()
            _store_partial(prepared, stream, "client_disconnected", DISCONNECTED)
        raise
    finally:
        prepared.release()


def _store_partial(prepared: PreparedReply, stream: ReplyStream, code: str, error: str):
    if not stream.text:
        return None
    try:
        return reply_store(
            prepared=prepared,
            text=stream.text,
            provider=stream.provider,
            model=stream.model,
            prompt_tokens=None,
            completion_tokens=None,
            status=GenerationStatus.INCOMPLETE,
            error_code=code,
            error=error,
        )
    except Exception:
        # Nothing else can be told to the client here; the user message is stored already.
        logger.exception("Could not store the partial reply to message %s", prepared.user_message.id)
        return None
