"""Server-sent events of a streamed reply, from a sync generator (the app stays WSGI).

Events, each `event: <name>` + `data: <json>`:
- `context`: {user_message, context}         first, before the model's first word
- `delta`:   {text}                           as the provider sends them, unbuffered
- `done`:    {message, usage}                 the stored assistant message
- `error`:   {code, message, partial_message} the provider failed mid-stream; what arrived
                                              is stored with metadata.incomplete = true

A client that disconnects mid-stream (the server closes this generator: GeneratorExit)
also gets its partial reply stored as incomplete; the user message is never lost.
"""

import json
import logging
from collections.abc import Iterator

from django.core.serializers.json import DjangoJSONEncoder

from conversations.serializers import MessageSerializer
from rag.chat_providers import ProviderError, ReplyStream
from rag.replies import PreparedReply, reply_store
from rag.serializers import ContextItemSerializer, ReplyUsageSerializer
from raptorflow.errors import DomainError

logger = logging.getLogger(__name__)

DISCONNECTED = "The client disconnected before the reply was complete."


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
    usage = ReplyUsageSerializer(message.metadata["usage"]).data
    return sse("done", {"message": MessageSerializer(message).data, "usage": usage})


def replay_events(prepared: PreparedReply) -> Iterator[str]:
    """An Idempotency-Key retry of a streamed reply: the stored answer as one delta."""
    yield _context_event(prepared)
    yield sse("delta", {"text": prepared.existing_reply.content})
    yield _done_event(prepared.existing_reply)


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
            partial = _store_partial(prepared, stream, f"{exc.provider} {exc.reason}")
            finished = True
            yield sse(
                "error",
                {
                    "code": "upstream_unavailable" if exc.retryable else "upstream_bad_response",
                    "message": f"The chat provider failed mid-reply: {exc.provider} {exc.reason}.",
                    "partial_message": MessageSerializer(partial).data if partial else None,
                },
            )
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
            yield sse("error", {"code": exc.code, "message": exc.message, "partial_message": None})
            return
        finished = True
        yield _done_event(message)
    except GeneratorExit:
        if not finished:
            stream.close()
            _store_partial(prepared, stream, DISCONNECTED)
        raise


def _store_partial(prepared: PreparedReply, stream: ReplyStream, error: str):
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
            incomplete=True,
            error=error,
        )
    except Exception:
        # Nothing else can be told to the client here; the user message is stored already.
        logger.exception("Could not store the partial reply to message %s", prepared.user_message.id)
        return None
