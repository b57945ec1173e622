"""Fixtures of the rag tests: provider keys in settings, and builders of the answers the
three providers' HTTP APIs give (the real SDKs parse them; respx serves them)."""

import json
import threading

import httpx  # httpx2, aliased by tests/conftest.py
import pytest

from conversations.services import conversation_create, message_create

OPENAI_URL = "https://api.openai.com/v1/chat/completions"
OPENROUTER_URL = "https://openrouter.ai/api/v1/chat/completions"
GEMINI_URL = "https://generativelanguage.googleapis.com/v1/models/gemini-2.5-flash:generateContent"
GEMINI_STREAM_URL = "https://generativelanguage.googleapis.com/v1/models/gemini-2.5-flash:streamGenerateContent"


@pytest.fixture(autouse=True)
def _chat_settings(settings):
    """No server key unless a test sets one; the order and defaults of SPEC §4."""
    settings.OPENAI_API_KEY = ""
    settings.GEMINI_API_KEY = ""
    settings.OPENROUTER_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    settings.OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
    settings.CHAT_PROVIDERS = ["openai", "gemini", "openrouter"]
    settings.OPENAI_CHAT_MODEL = "gpt-4o-mini"
    settings.GEMINI_CHAT_MODEL = "gemini-2.5-flash"
    settings.OPENROUTER_CHAT_MODEL = "openai/gpt-4o-mini"
    settings.PROVIDER_TIMEOUT_SECONDS = 7.0
    # An idle stream's keepalive comes quickly here (15 s in production).
    settings.REPLY_KEEPALIVE_SECONDS = 0.2
    return settings


@pytest.fixture(autouse=True)
def _replies_finish_within_the_test():
    """Streamed replies are generated on threads of their own, and what they store schedules
    embedding jobs: all of them end before the test's database is flushed or rolled back."""
    yield
    from raptorflow import jobs

    for thread in threading.enumerate():
        if thread.name.startswith("reply-"):
            thread.join(timeout=30)
            assert not thread.is_alive(), f"{thread.name} is still generating"
    jobs.in_process_worker().wait_until_idle()


@pytest.fixture
def all_keys(settings):
    settings.OPENAI_API_KEY = "sk-server-openai-0000"
    settings.GEMINI_API_KEY = "server-gemini-1111"
    settings.OPENROUTER_API_KEY = "sk-or-server-2222"
    return settings


# --- provider answers ------------------------------------------------------------------


def openai_completion(text, *, model="gpt-4o-mini-2024-07-18", prompt_tokens=42, completion_tokens=7) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def openai_stream_chunks(deltas, *, model="gpt-4o-mini-2024-07-18", prompt_tokens=42, completion_tokens=7):
    """The SSE events of a streamed chat completion with stream_options.include_usage."""

    def event(payload):
        return f"data: {json.dumps(payload)}\n\n".encode()

    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model}
    chunks = [event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
    for delta in deltas:
        chunks.append(event({**base, "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": None}]}))
    chunks.append(event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    usage["total_tokens"] = prompt_tokens + completion_tokens
    chunks.append(event({**base, "choices": [], "usage": usage}))
    chunks.append(b"data: [DONE]\n\n")
    return chunks


def gemini_response(text, *, prompt_tokens=40, completion_tokens=9, model="gemini-2.5-flash") -> dict:
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": completion_tokens,
            "totalTokenCount": prompt_tokens + completion_tokens,
        },
        "modelVersion": model,
    }


def gemini_stream_chunks(deltas, *, prompt_tokens=40, completion_tokens=9):
    chunks = []
    for index, delta in enumerate(deltas):
        payload = {
            "candidates": [{"content": {"role": "model", "parts": [{"text": delta}]}, "index": 0}],
            "modelVersion": "gemini-2.5-flash",
        }
        if index == len(deltas) - 1:
            payload["candidates"][0]["finishReason"] = "STOP"
            payload["usageMetadata"] = {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": completion_tokens,
                "totalTokenCount": prompt_tokens + completion_tokens,
            }
        chunks.append(f"data: {json.dumps(payload)}\r\n\r\n".encode())
    return chunks


class TrackedStream(httpx.SyncByteStream):
    """A response body handed out chunk by chunk, counting what the provider has sent, and
    optionally failing after `fail_after` chunks as a connection dropping mid-answer."""

    def __init__(self, chunks, *, fail_after=None):
        self.chunks = list(chunks)
        self.fail_after = fail_after
        self.sent = 0
        self.closed = False

    def __iter__(self):
        for chunk in self.chunks:
            if self.fail_after is not None and self.sent >= self.fail_after:
                raise httpx.ReadTimeout("provider stopped answering")
            self.sent += 1
            yield chunk

    def close(self):
        self.closed = True

    @property
    def finished(self) -> bool:
        return self.sent == len(self.chunks)


class GatedStream(TrackedStream):
    """A provider that sends `hold_at` chunks, then waits for `gate` (set by the test) before
    the rest: a reply still being generated while the test looks at it."""

    def __init__(self, chunks, *, hold_at: int, **kwargs):
        super().__init__(chunks, **kwargs)
        self.hold_at = hold_at
        self.gate = threading.Event()
        self.holding = threading.Event()

    def __iter__(self):
        for index, chunk in enumerate(super().__iter__()):
            if index == self.hold_at:
                self.holding.set()
                assert self.gate.wait(30), "the test never opened the gate"
            yield chunk


def sse_response(chunks, *, hold_at=None, **kwargs) -> tuple[httpx.Response, TrackedStream]:
    stream = TrackedStream(chunks, **kwargs) if hold_at is None else GatedStream(chunks, hold_at=hold_at, **kwargs)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream), stream


def request_json(route) -> dict:
    return json.loads(route.calls.last.request.content)


# --- conversations ---------------------------------------------------------------------


@pytest.fixture
def make_conversation(owner, org):
    def make(*, user=None, organization=None, title="Q4 Marketing Strategy", agent_type="strategy", messages=()):
        conversation = conversation_create(
            organization=organization or org, owner=user or owner, title=title, agent_type=agent_type
        )
        for role, content in messages:
            message_create(conversation=conversation, role=role, content=content)
        return conversation

    return make


@pytest.fixture
def embed():
    """Embeds messages with the search app's own code and the local model (no network)."""
    from search.providers import get_embedding_provider
    from search.services import embeddings_store

    def run(*messages):
        embeddings_store(items=[(m, m.content) for m in messages], provider=get_embedding_provider(), on_purpose=True)

    return run


def reply_url(conversation) -> str:
    return f"/api/conversations/{conversation.id}/reply"


def parse_sse_with_ids(raw: bytes) -> list[tuple[str, str, dict]]:
    """(id, event, data) of each event; comment lines (keepalives) are skipped."""
    events = []
    for block in raw.decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        events.append((fields["id"], fields["event"], json.loads(fields["data"])))
    return events


def parse_sse(raw: bytes) -> list[tuple[str, dict]]:
    return [(event, data) for _, event, data in parse_sse_with_ids(raw)]


def wait_until_ended(reply_id, timeout: float = 30) -> str:
    """Blocks until the reply's generator wrote its last event; that event's name."""
    import time

    from rag.reply_events import event_log

    deadline, after = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        for event in event_log().read(str(reply_id), after=after, block=0.5):
            after = event.id
            if event.terminal:
                return event.event
    raise AssertionError(f"reply {reply_id} did not end within {timeout}s")


def sent_prompt(route) -> str:
    """What the model was asked (system prompt and user prompt), from the mocked request."""
    body = request_json(route)
    if "messages" in body:
        return "\n".join(m["content"] for m in body["messages"])
    parts = [p["text"] for c in body.get("contents", []) for p in c["parts"]]
    parts += [p["text"] for p in body.get("systemInstruction", {}).get("parts", [])]
    return "\n".join(parts)
