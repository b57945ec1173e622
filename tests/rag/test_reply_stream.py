"""POST /api/conversations/{id}/reply with stream: true — server-sent events from a sync
generator: context first, deltas as they arrive, then done or error; partial replies kept."""

import httpx
import pytest

from conversations.models import Message
from tests.rag.conftest import (
    GEMINI_STREAM_URL,
    OPENAI_URL,
    OPENROUTER_URL,
    gemini_stream_chunks,
    openai_stream_chunks,
    parse_sse,
    reply_url,
    sent_prompt,
    sse_response,
)


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
    events = read_events(response)
    assert [name for name, _ in events] == ["context", "delta", "delta", "delta", "done"]
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
    response_body, provider_body = sse_response(openai_stream_chunks(["One ", "two ", "three ", "four."]))
    respx_mock.post(OPENAI_URL).mock(return_value=response_body)

    response = stream_reply(owner_client, history)
    chunks = iter(response.streaming_content)
    first = parse_sse(next(chunks))
    second = parse_sse(next(chunks))

    assert [name for name, _ in first + second] == ["context", "delta"]
    assert second[0][1]["text"] == "One "
    assert not provider_body.finished
    rest = parse_sse(b"".join(chunks))
    assert rest[-1][0] == "done"
    assert provider_body.finished


def test_client_disconnect_mid_stream_stores_partial_reply_as_incomplete(owner_client, all_keys, respx_mock, history):
    response_body, provider_body = sse_response(openai_stream_chunks(["Half ", "of ", "the ", "answer."]))
    respx_mock.post(OPENAI_URL).mock(return_value=response_body)

    response = stream_reply(owner_client, history)
    chunks = iter(response.streaming_content)
    next(chunks)  # context
    next(chunks)  # first delta
    next(chunks)  # second delta
    disconnect(response)

    assert not provider_body.finished
    user_message, partial = Message.objects.filter(conversation=history).order_by("sequence")[2:]
    assert (user_message.role, user_message.content) == ("user", "Ideas for the launch?")
    assert (partial.role, partial.content) == ("assistant", "Half of ")
    assert partial.generation["status"] == "incomplete"
    assert partial.generation["reply_to"] == str(user_message.id)
    assert partial.generation["usage"]["estimated"] is True
    assert partial.generation["error"]["code"] == "client_disconnected"
    assert "disconnected" in partial.generation["error"]["message"]


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
