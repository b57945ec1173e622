"""POST /api/conversations/{id}/reply with stream: true — server-sent events, each with an id:
context first (naming the reply), deltas as they arrive, then done or error. The reply is
generated apart from the request (a worker thread here: the tests run on real transactions),
so a client that disconnects stops nothing, and GET …/replies/{reply_id}/events resumes after
Last-Event-ID; POST …/replies/{reply_id}/cancel stops it."""

import httpx
import pytest

from billing.models import Usage
from conversations.models import Message
from tests.rag.conftest import (
    GEMINI_STREAM_URL,
    OPENAI_URL,
    OPENROUTER_URL,
    gemini_stream_chunks,
    openai_stream_chunks,
    parse_sse,
    parse_sse_with_ids,
    reply_url,
    sent_prompt,
    sse_response,
    wait_until_ended,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def history(make_conversation):
    return make_conversation(
        messages=[("user", "We sell vegan protein bars."), ("assistant", "Runners are a good audience.")]
    )


def stream_reply(client, conversation, content="Ideas for the launch?", **headers):
    return client.post(reply_url(conversation), {"content": content, "stream": True}, format="json", **headers)


def disconnect(response) -> None:
    """What a WSGI server does when the client goes away: it stops reading and closes the
    iterator it was reading, which closes the response and so the event generator
    (GeneratorExit at its current yield). Django's test client makes that iterator a
    wrapper (`_iterator`) that keeps the test's database connection open while it does so."""
    response._iterator.close()


def read_events(response) -> list[tuple[str, dict]]:
    return parse_sse(b"".join(response.streaming_content))


def events_url(conversation, reply_id, action="events") -> str:
    return f"/api/conversations/{conversation.id}/replies/{reply_id}/{action}"


def next_event(chunks) -> tuple[str, str, dict]:
    """The next event of a stream being read, skipping keepalive comments."""
    for chunk in chunks:
        events = parse_sse_with_ids(chunk)
        if events:
            (event,) = events
            return event
    raise AssertionError("the stream ended")


@pytest.mark.parametrize(
    "provider, url, chunks",
    [
        ("openai", OPENAI_URL, openai_stream_chunks(["Run ", "club ", "tastings."], prompt_tokens=50,
                                                    completion_tokens=3)),
        ("gemini", GEMINI_STREAM_URL, gemini_stream_chunks(["Run ", "club ", "tastings."], prompt_tokens=50,
                                                           completion_tokens=3)),
        ("openrouter", OPENROUTER_URL, openai_stream_chunks(["Run ", "club ", "tastings."], prompt_tokens=50,
                                                            completion_tokens=3, model="openai/gpt-4o-mini")),
    ],
)
def test_stream_sends_context_deltas_done_for_each_provider(
    owner_client, settings, respx_mock, history, provider, url, chunks
):
    setattr(settings, f"{provider.upper()}_API_KEY", "server-key-1234")
    settings.CHAT_PROVIDERS = [provider]
    response_body, _ = sse_response(chunks)
    route = respx_mock.post(url).mock(return_value=response_body)

    response = stream_reply(owner_client, history)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["X-Accel-Buffering"] == "no"
    assert response["Cache-Control"] == "no-cache"
    with_ids = parse_sse_with_ids(b"".join(response.streaming_content))
    events = [(name, data) for _, name, data in with_ids]
    assert [name for name, _ in events] == ["context", "delta", "delta", "delta", "done"]
    # Every event has an id, growing; the first event and a header name the reply.
    assert [event_id for event_id, _, _ in with_ids] == ["1", "2", "3", "4", "5"]
    assert events[0][1]["reply_id"] == response["X-Reply-Id"]
    context = events[0][1]
    assert context["user_message"]["content"] == "Ideas for the launch?"
    assert {item["snippet"] for item in context["context"]} == {
        "We sell vegan protein bars.",
        "Runners are a good audience.",
    }
    assert "".join(data["text"] for name, data in events if name == "delta") == "Run club tastings."
    done = events[-1][1]
    assert done["usage"] == {"prompt_tokens": 50, "completion_tokens": 3, "total_tokens": 53, "estimated": False}
    stored = Message.objects.get(id=done["message"]["id"])
    assert (stored.role, stored.content) == ("assistant", "Run club tastings.")
    assert stored.generation["provider"] == provider
    assert stored.generation["status"] == "complete"
    assert "error" not in stored.generation
    assert "Runners are a good audience." in sent_prompt(route)
    history.refresh_from_db()
    assert history.usage["total_tokens"] == 53


def test_first_delta_reaches_client_before_provider_sends_last_chunk(owner_client, all_keys, respx_mock, history):
    response_body, provider_body = sse_response(openai_stream_chunks(["One ", "two ", "three ", "four."]), hold_at=2)
    respx_mock.post(OPENAI_URL).mock(return_value=response_body)

    response = stream_reply(owner_client, history)
    chunks = iter(response.streaming_content)
    first, second = next_event(chunks), next_event(chunks)

    assert [name for _, name, _ in (first, second)] == ["context", "delta"]
    assert second[2]["text"] == "One "
    assert not provider_body.finished
    # While the provider is silent the stream stays open with comment lines.
    assert next(chunks) == b": keepalive\n\n"
    provider_body.gate.set()
    rest = parse_sse(b"".join(chunks))
    assert rest[-1][0] == "done"
    assert provider_body.finished


def test_client_disconnect_mid_stream_does_not_stop_the_reply(owner_client, all_keys, respx_mock, history, org):
    response_body, provider_body = sse_response(openai_stream_chunks(["Half ", "of ", "the ", "answer."]), hold_at=3)
    respx_mock.post(OPENAI_URL).mock(return_value=response_body)

    response = stream_reply(owner_client, history)
    chunks = iter(response.streaming_content)
    next_event(chunks)  # context
    next_event(chunks)  # first delta
    next_event(chunks)  # second delta
    disconnect(response)
    provider_body.gate.set()

    assert wait_until_ended(response["X-Reply-Id"]) == "done"
    assert provider_body.finished
    user_message, reply = Message.objects.filter(conversation=history).order_by("sequence")[2:]
    assert (user_message.role, user_message.content) == ("user", "Ideas for the launch?")
    assert (reply.role, reply.content) == ("assistant", "Half of the answer.")
    assert reply.generation["status"] == "complete"
    assert reply.generation["usage"] == {
        "prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49, "estimated": False
    }
    # The reservation was settled with the provider's usage.
    assert Usage.objects.get(organization=org).reply_tokens == 49


def test_a_cut_stream_resumes_after_last_event_id_with_every_remaining_event_once(
    owner_client, all_keys, respx_mock, history
):
    deltas = ["Run ", "club ", "tastings ", "at ", "dawn, ", "then ", "a ", "podcast."]
    response_body, provider_body = sse_response(openai_stream_chunks(deltas), hold_at=4)
    respx_mock.post(OPENAI_URL).mock(return_value=response_body)

    response = stream_reply(owner_client, history)
    reply_id = response["X-Reply-Id"]
    chunks = iter(response.streaming_content)
    received = [next_event(chunks) for _ in range(3)]  # context and two deltas
    disconnect(response)
    last_id = received[-1][0]

    resumed = owner_client.get(events_url(history, reply_id), HTTP_LAST_EVENT_ID=last_id)
    assert resumed.status_code == 200
    assert resumed["Content-Type"].startswith("text/event-stream")
    assert resumed["X-Accel-Buffering"] == "no"
    resumed_chunks = iter(resumed.streaming_content)
    # What was generated while the client was away comes first, then the rest live.
    rest = [next_event(resumed_chunks)]
    assert rest[0][2] == {"text": "tastings "}
    provider_body.gate.set()
    rest += parse_sse_with_ids(b"".join(resumed_chunks))

    events = received + rest
    ids = [int(event_id) for event_id, _, _ in events]
    assert ids == list(range(1, len(events) + 1))  # each event exactly once, in order
    assert [name for _, name, _ in events] == ["context"] + ["delta"] * len(deltas) + ["done"]
    assert "".join(data["text"] for _, name, data in events if name == "delta") == "".join(deltas)
    stored = Message.objects.get(id=events[-1][2]["message"]["id"])
    assert (stored.content, stored.generation["status"]) == ("".join(deltas), "complete")
    # Resuming a finished reply from the start gives the same events again.
    again = parse_sse_with_ids(b"".join(owner_client.get(events_url(history, reply_id)).streaming_content))
    assert again == events


def test_cancel_stores_what_was_sent_as_cancelled(owner_client, all_keys, respx_mock, history, org):
    response_body, provider_body = sse_response(openai_stream_chunks(["Keep ", "this ", "not ", "this."]), hold_at=3)
    respx_mock.post(OPENAI_URL).mock(return_value=response_body)
    response = stream_reply(owner_client, history)
    reply_id = response["X-Reply-Id"]
    chunks = iter(response.streaming_content)
    assert [next_event(chunks)[1] for _ in range(3)] == ["context", "delta", "delta"]

    cancelled = owner_client.post(events_url(history, reply_id, "cancel"))
    provider_body.gate.set()
    rest = parse_sse(b"".join(chunks))

    assert cancelled.status_code == 202
    assert cancelled.json() == {"reply_id": reply_id, "status": "cancelling"}
    assert [name for name, _ in rest] == ["error"]
    error = rest[0][1]
    assert error["code"] == "cancelled"
    stored = Message.objects.get(id=error["partial_message"]["id"])
    assert stored.content == "Keep this "
    assert stored.generation["status"] == "cancelled"
    assert stored.generation["usage"]["estimated"] is True
    # The reservation is settled with the estimate of what was written, not held.
    assert Usage.objects.get(organization=org).reply_tokens == stored.generation["usage"]["total_tokens"]
    again = owner_client.post(events_url(history, reply_id, "cancel"))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "reply_finished"


def test_a_retry_with_the_same_key_while_generating_attaches_to_its_events(
    owner_client, all_keys, respx_mock, history
):
    response_body, provider_body = sse_response(openai_stream_chunks(["Only ", "once."]), hold_at=2)
    route = respx_mock.post(OPENAI_URL).mock(return_value=response_body)
    headers = {"HTTP_IDEMPOTENCY_KEY": "attach-1"}
    first = stream_reply(owner_client, history, **headers)
    first_chunks = iter(first.streaming_content)
    next_event(first_chunks)

    retry = stream_reply(owner_client, history, **headers)
    as_json = owner_client.post(reply_url(history), {"content": "Ideas for the launch?"}, format="json", **headers)
    other_body = stream_reply(owner_client, history, content="Another question", **headers)
    provider_body.gate.set()

    assert retry.status_code == 200
    assert retry["X-Reply-Id"] == first["X-Reply-Id"]
    assert parse_sse_with_ids(b"".join(retry.streaming_content))[-1][1] == "done"
    assert as_json.status_code == 409 and as_json.json()["error"]["code"] == "in_progress"
    assert other_body.status_code == 409 and other_body.json()["error"]["code"] == "idempotency_key_reused"
    disconnect(first)
    assert route.call_count == 1
    assert Message.objects.filter(conversation=history).count() == 4


def test_outsider_and_teammate_cannot_attach_resume_or_cancel(
    owner_client, outsider_client, teammate_client, all_keys, respx_mock, history
):
    response_body, provider_body = sse_response(openai_stream_chunks(["Private ", "plan."]), hold_at=2)
    respx_mock.post(OPENAI_URL).mock(return_value=response_body)
    response = stream_reply(owner_client, history)
    reply_id = response["X-Reply-Id"]

    for client in (outsider_client, teammate_client):
        assert client.get(events_url(history, reply_id)).status_code == 404
        assert client.post(events_url(history, reply_id, "cancel")).status_code == 404
    provider_body.gate.set()
    assert read_events(response)[-1][0] == "done"
    assert Message.objects.get(conversation=history, sequence=4).generation["status"] == "complete"


def test_unknown_reply_another_conversation_and_bad_last_event_id(
    owner_client, all_keys, respx_mock, history, make_conversation
):
    response_body, _ = sse_response(openai_stream_chunks(["Done."]))
    respx_mock.post(OPENAI_URL).mock(return_value=response_body)
    response = stream_reply(owner_client, history)
    reply_id = response["X-Reply-Id"]
    read_events(response)
    other = make_conversation(title="Other")

    assert owner_client.get(events_url(history, "7f1f0b8e-3f1e-4a7e-9a53-0a3d1e1b2c3d")).status_code == 404
    assert owner_client.get(events_url(other, reply_id)).status_code == 404
    assert owner_client.post(events_url(other, reply_id, "cancel")).status_code == 404
    bad = owner_client.get(events_url(history, reply_id), HTTP_LAST_EVENT_ID="not-an-id")
    assert bad.status_code == 400
    assert "Last-Event-ID" in bad.json()["error"]["fields"]


def test_provider_failure_mid_stream_sends_error_and_keeps_partial(owner_client, all_keys, respx_mock, history):
    chunks = openai_stream_chunks(["Start ", "of ", "reply"])
    response_body, _ = sse_response(chunks, fail_after=3)  # role chunk + two deltas, then the connection drops
    respx_mock.post(OPENAI_URL).mock(return_value=response_body)
    gemini_route = respx_mock.post(GEMINI_STREAM_URL)

    events = read_events(stream_reply(owner_client, history))

    assert [name for name, _ in events] == ["context", "delta", "delta", "error"]
    error = events[-1][1]
    assert error["code"] == "upstream_unavailable"
    assert "openai timed out" in error["message"]
    partial = Message.objects.get(id=error["partial_message"]["id"])
    assert (partial.content, partial.generation["status"]) == ("Start of ", "incomplete")
    assert Message.objects.filter(conversation=history, role="user", content="Ideas for the launch?").exists()
    # After the first delta there is no fallback: the client already shows this answer.
    assert gemini_route.call_count == 0


def test_stream_falls_back_before_first_delta(owner_client, all_keys, respx_mock, history):
    respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(429, json={"error": {"message": "busy"}}))
    response_body, _ = sse_response(gemini_stream_chunks(["From ", "Gemini."]))
    respx_mock.post(GEMINI_STREAM_URL).mock(return_value=response_body)

    events = read_events(stream_reply(owner_client, history))

    assert [name for name, _ in events] == ["context", "delta", "delta", "done"]
    assert events[-1][1]["message"]["generation"]["provider"] == "gemini"


def test_stream_with_every_provider_failing_is_503_and_keeps_user_message(
    owner_client, settings, respx_mock, history
):
    settings.OPENAI_API_KEY = "sk-server"
    respx_mock.post(OPENAI_URL).mock(side_effect=httpx.ConnectTimeout("unreachable"))

    response = stream_reply(owner_client, history)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert list(Message.objects.filter(conversation=history).order_by("sequence").values_list("role", flat=True)) == [
        "user", "assistant", "user"
    ]


def test_stream_without_provider_is_503_and_keeps_user_message(owner_client, history):
    response = stream_reply(owner_client, history)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_configured"
    assert Message.objects.filter(conversation=history, content="Ideas for the launch?").exists()


def test_stream_retry_with_same_idempotency_key_replays_without_calling_provider(
    owner_client, all_keys, respx_mock, history
):
    response_body, _ = sse_response(openai_stream_chunks(["Once ", "only."]))
    route = respx_mock.post(OPENAI_URL).mock(return_value=response_body)
    headers = {"HTTP_IDEMPOTENCY_KEY": "stream-1"}

    first = read_events(stream_reply(owner_client, history, **headers))
    again = read_events(stream_reply(owner_client, history, **headers))

    assert [name for name, _ in again] == ["context", "delta", "done"]
    assert again[1][1]["text"] == "Once only."
    assert again[-1][1]["message"]["id"] == first[-1][1]["message"]["id"]
    assert again[0][1]["context"] == first[0][1]["context"]
    assert Message.objects.filter(conversation=history).count() == 4
    assert route.call_count == 1
