"""Where a streamed reply's events live while it is generated, so that any request — the one
that started it, a resume after a cut connection, a retry with the same Idempotency-Key —
can read them from any point and follow them live.

    log = event_log()
    log.create(reply_id, owner)             # who may read or cancel it
    log.append(reply_id, "delta", {...})    # -> the event's id (the SSE `id:`)
    log.read(reply_id, after=last_id, block=15.0) -> [ReplyEvent, ...]

Two backends, one interface:
- with REDIS_URL: Redis Streams, one stream per reply (XADD with an approximate MAXLEN,
  XREAD BLOCK to follow it live), its owner in a hash beside it, both expiring
  REPLY_EVENTS_TTL_SECONDS (one hour by default) after the last event — any instance of
  the API can serve a resume, and a Celery worker writes the events;
- without (the embedded default): in this process, a list per reply guarded by a
  condition variable, dropped after the same time. A resume must reach the process that
  generates the reply, as the worker thread that generates it lives there too.

Event ids only grow within a reply: Redis's own stream ids (`<ms>-<n>`), or a counter in
process. A cancel is a flag beside the events that the generator checks between deltas.
"""

import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

# Events that end a reply's stream: after one of them nothing more is written.
TERMINAL_EVENTS = frozenset({"done", "error"})
MAX_EVENTS_PER_REPLY = 20_000


@dataclass(frozen=True)
class ReplyOwner:
    conversation_id: str
    user_id: str
    organization_id: str


@dataclass(frozen=True)
class ReplyEvent:
    id: str
    event: str
    data: dict

    @property
    def terminal(self) -> bool:
        return self.event in TERMINAL_EVENTS


class InvalidEventId(ValueError):
    """A Last-Event-ID that no event of this backend could have."""


def _ttl() -> int:
    return settings.REPLY_EVENTS_TTL_SECONDS


class InProcessEventLog:
    _ID = re.compile(r"^[0-9]{1,12}$")

    def __init__(self):
        self._lock = threading.Condition()
        self._replies: dict[str, dict] = {}

    def create(self, reply_id: str, owner: ReplyOwner) -> None:
        with self._lock:
            self._expire()
            self._replies[reply_id] = {"owner": owner, "events": [], "cancel": False, "touched": time.monotonic()}

    def owner(self, reply_id: str) -> ReplyOwner | None:
        with self._lock:
            self._expire()
            reply = self._replies.get(reply_id)
            return reply["owner"] if reply else None

    def append(self, reply_id: str, event: str, data: dict) -> str:
        payload = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
        with self._lock:
            reply = self._replies[reply_id]
            event_id = str(len(reply["events"]) + 1)
            reply["events"].append(ReplyEvent(event_id, event, payload))
            reply["touched"] = time.monotonic()
            self._lock.notify_all()
        return event_id

    def read(self, reply_id: str, *, after: str | None, block: float = 0) -> list[ReplyEvent]:
        start = self._position(after)
        deadline = time.monotonic() + block
        with self._lock:
            while True:
                reply = self._replies.get(reply_id)
                if reply is None:
                    return []
                events = reply["events"][start:]
                remaining = deadline - time.monotonic()
                if events or remaining <= 0:
                    return list(events)
                self._lock.wait(remaining)

    def last(self, reply_id: str) -> ReplyEvent | None:
        with self._lock:
            reply = self._replies.get(reply_id)
            return reply["events"][-1] if reply and reply["events"] else None

    def request_cancel(self, reply_id: str) -> None:
        with self._lock:
            if reply_id in self._replies:
                self._replies[reply_id]["cancel"] = True

    def cancel_requested(self, reply_id: str) -> bool:
        with self._lock:
            reply = self._replies.get(reply_id)
            return bool(reply and reply["cancel"])

    def valid_id(self, event_id: str) -> bool:
        return bool(self._ID.match(event_id))

    def _position(self, after: str | None) -> int:
        if after is None:
            return 0
        if not self.valid_id(after):
            raise InvalidEventId(after)
        return int(after)

    def _expire(self) -> None:
        cutoff = time.monotonic() - _ttl()
        for reply_id in [r for r, reply in self._replies.items() if reply["touched"] < cutoff]:
            del self._replies[reply_id]


class RedisEventLog:
    _ID = re.compile(r"^[0-9]{1,15}-[0-9]{1,10}$")

    def __init__(self, url: str):
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5, health_check_interval=30)

    @staticmethod
    def _keys(reply_id: str) -> tuple[str, str, str]:
        base = f"raptorflow:reply:{reply_id}"
        return f"{base}:events", f"{base}:owner", f"{base}:cancel"

    def create(self, reply_id: str, owner: ReplyOwner) -> None:
        _, owner_key, _ = self._keys(reply_id)
        self._redis.set(owner_key, json.dumps(owner.__dict__), ex=_ttl())

    def owner(self, reply_id: str) -> ReplyOwner | None:
        _, owner_key, _ = self._keys(reply_id)
        raw = self._redis.get(owner_key)
        return ReplyOwner(**json.loads(raw)) if raw else None

    def append(self, reply_id: str, event: str, data: dict) -> str:
        events_key, owner_key, _ = self._keys(reply_id)
        fields = {"event": event, "data": json.dumps(data, cls=DjangoJSONEncoder)}
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(events_key, fields, maxlen=MAX_EVENTS_PER_REPLY, approximate=True)
            # Expiry counts from the last event, for the events and the owner alike.
            pipe.expire(events_key, _ttl())
            pipe.expire(owner_key, _ttl())
            event_id = pipe.execute()[0]
        return event_id.decode()

    def read(self, reply_id: str, *, after: str | None, block: float = 0) -> list[ReplyEvent]:
        if after is not None and not self.valid_id(after):
            raise InvalidEventId(after)
        events_key, _, _ = self._keys(reply_id)
        # XREAD BLOCK 0 would wait forever: at least one millisecond.
        block_ms = max(1, int(block * 1000)) if block > 0 else None
        answer = self._redis.xread({events_key: after or "0-0"}, block=block_ms, count=1000)
        return list(self._events(entry for _, entries in answer or () for entry in entries))

    def last(self, reply_id: str) -> ReplyEvent | None:
        events_key, _, _ = self._keys(reply_id)
        newest = list(self._events(self._redis.xrevrange(events_key, count=1)))
        return newest[0] if newest else None

    def request_cancel(self, reply_id: str) -> None:
        _, _, cancel_key = self._keys(reply_id)
        self._redis.set(cancel_key, "1", ex=_ttl())

    def cancel_requested(self, reply_id: str) -> bool:
        _, _, cancel_key = self._keys(reply_id)
        return bool(self._redis.exists(cancel_key))

    def valid_id(self, event_id: str) -> bool:
        return bool(self._ID.match(event_id))

    @staticmethod
    def _events(entries: Iterable) -> Iterable[ReplyEvent]:
        for event_id, fields in entries:
            yield ReplyEvent(event_id.decode(), fields[b"event"].decode(), json.loads(fields[b"data"]))


_logs: dict[str, object] = {}
_logs_lock = threading.Lock()


def event_log() -> InProcessEventLog | RedisEventLog:
    """The backend for this process's configuration (one per configuration, kept)."""
    url = settings.REDIS_URL
    key = url or "in-process"
    with _logs_lock:
        if key not in _logs:
            _logs[key] = RedisEventLog(url) if url else InProcessEventLog()
        return _logs[key]
