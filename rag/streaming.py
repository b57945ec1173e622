"""Server-sent events of a streamed reply, from a sync generator (the app stays WSGI).

Events, each `id: <id>` + `event: <name>` + `data: <json>`:
- `context`: {reply_id, user_message, context}  first, before the model's first word
- `delta`:   {text}                             as the provider sends them, unbuffered
- `done`:    {message, usage}                   the stored assistant message
- `error`:   {code, message, partial_message}   the provider failed mid-reply (what arrived is
                                                stored with generation.status "incomplete"),
                                                or `cancelled` (stored as "cancelled")

The reply is generated apart from the request (rag.reply_runner) and its events are kept
(rag.reply_events): a response only follows them, from the start or from after a client's
Last-Event-ID, so a client that disconnects stops nothing — the reply is completed and
stored, and `GET …/replies/{reply_id}/events` resumes where it left off. While no event
comes, a comment line (`: keepalive`) goes out every REPLY_KEEPALIVE_SECONDS (15 s) so
proxies keep the connection open.

A retry with the same Idempotency-Key after the reply was stored replays it: `context`, one
`delta`, then `done` — or, for a reply stored incomplete, the `error` it ended with.
"""

import json
import time
from collections.abc import Iterator

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse

from conversations.models import GenerationStatus
from conversations.serializers import MessageSerializer
from rag.replies import PreparedReply
from rag.reply_events import ReplyEvent, event_log
from rag.serializers import ContextItemSerializer, ReplyUsageSerializer
from raptorflow.errors import UpstreamBadResponse, UpstreamUnavailable

REPLY_ID_HEADER = "X-Reply-Id"
KEEPALIVE = ": keepalive\n\n"


class EventStreamResponse(StreamingHttpResponse):
    """Server-sent events, unbuffered by proxies."""

    def __init__(self, events: Iterator[str], *, reply_id: str | None = None):
        super().__init__(events, content_type="text/event-stream; charset=utf-8")
        self["Cache-Control"] = "no-cache"
        # Tells nginx-style proxies not to buffer the stream.
        self["X-Accel-Buffering"] = "no"
        if reply_id is not None:
            self[REPLY_ID_HEADER] = reply_id


def sse(event: str, data: dict, event_id: str) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data, cls=DjangoJSONEncoder)}\n\n"


def follow(reply_id: str, *, after: str | None = None) -> Iterator[str]:
    """The reply's events after `after` (all of them without), then the new ones as they are
    written, until the last one (`done` or `error`); a keepalive comment while none comes."""
    log = event_log()
    while True:
        events = log.read(reply_id, after=after, block=settings.REPLY_KEEPALIVE_SECONDS)
        if not events:
            if log.owner(reply_id) is None:
                return  # expired meanwhile
            yield KEEPALIVE
            continue
        for event in events:
            yield sse(event.event, event.data, event.id)
            after = event.id
            if event.terminal:
                return


def first_outcome(reply_id: str, *, timeout: float) -> ReplyEvent | None:
    """Waits (up to `timeout`) until the reply has a first delta or has ended; that event.
    A stream whose providers all fail before the first word answers a plain HTTP error
    instead of a stream that starts and errs."""
    log = event_log()
    after, deadline = None, _now() + timeout
    while (remaining := deadline - _now()) > 0:
        for event in log.read(reply_id, after=after, block=remaining):
            if event.event != "context":
                return event
            after = event.id
    return None


def raise_if_failed_before_first_delta(event: ReplyEvent | None) -> None:
    if event is None or event.event != "error" or not event.data.get("before_first_delta"):
        return
    if event.data["code"] == UpstreamBadResponse.default_code:
        raise UpstreamBadResponse(event.data["message"])
    raise UpstreamUnavailable(event.data["message"], code=event.data["code"])


def _now() -> float:
    return time.monotonic()


def replay_events(prepared: PreparedReply) -> Iterator[str]:
    """An Idempotency-Key retry of a stored reply: the stored answer as one delta, ended as
    the first stream ended (`done`, or `error` with the partial reply)."""
    reply = prepared.existing_reply
    yield sse(
        "context",
        {
            "reply_id": None,
            "user_message": MessageSerializer(prepared.user_message).data,
            "context": ContextItemSerializer(prepared.context, many=True).data,
        },
        "1",
    )
    yield sse("delta", {"text": reply.content}, "2")
    if reply.generation.get("status") == GenerationStatus.COMPLETE:
        usage = ReplyUsageSerializer(reply.generation["usage"]).data
        yield sse("done", {"message": MessageSerializer(reply).data, "usage": usage}, "3")
    else:
        error = reply.generation.get("error") or {}
        data = {
            "code": error.get("code", "reply_interrupted"),
            "message": error.get("message", "The reply was interrupted."),
            "partial_message": MessageSerializer(reply).data,
        }
        yield sse("error", data, "3")
