"""Idempotency-Key on POST /api/conversations/{id}/reply bound to its request, the reply's
read-only `generation` (nothing a client stores can break or forge a replay), reply tokens
reserved and given back, and retries of a reply that ended incomplete."""

import hashlib

import httpx
import pytest
from django.core.signals import request_finished
from django.db import close_old_connections

from billing.models import Usage
from conversations.models import Message
from tests.rag.conftest import (
    OPENAI_URL,
    openai_completion,
    openai_stream_chunks,
    parse_sse,
    reply_url,
    sse_response,
    wait_until_ended,
)

HISTORY = [
    ("user", "Our product is a vegan protein bar for runners."),
    ("assistant", "Great, runners care about clean ingredients and energy."),
]


@pytest.fixture
def history(make_conversation):
    return make_conversation(messages=HISTORY)


def openai_ok(respx_mock, text="Sponsor a local 10k.", **usage):
    return respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(200, json=openai_completion(text, **usage)))


def reply(client, conversation, body, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(reply_url(conversation), body, format="json", **headers)


def reply_tokens_used(org) -> int:
    row = Usage.objects.filter(organization=org).first()
    return row.reply_tokens if row else 0


def message_rows(conversation):
    return list(Message.objects.filter(conversation=conversation).order_by("sequence").values_list("id", "content"))


# --- same key, same or another body ---------------------------------------------------------


def test_retry_with_the_same_body_and_another_stream_flag_is_the_first_reply(
    owner_client, all_keys, respx_mock, history
):
    route = openai_ok(respx_mock)

    first = reply(owner_client, history, {"content": "Ideas?"}, key="r-1")
    streamed = reply(owner_client, history, {"content": "Ideas?", "stream": True}, key="r-1")
    again = reply(owner_client, history, {"content": "Ideas?", "stream": False}, key="r-1")

    assert (first.status_code, streamed.status_code, again.status_code) == (201, 200, 200)
    assert again.json() == first.json()
    events = parse_sse(b"".join(streamed.streaming_content))
    assert [name for name, _ in events] == ["context", "delta", "done"]
    assert events[-1][1]["message"] == first.json()["message"]
    assert Message.objects.filter(conversation=history).count() == 4
    assert route.call_count == 1


@pytest.mark.parametrize("second_body", [{"content": "Something else?"}, {"content": "Ideas? ", "stream": True}])
def test_same_key_with_another_body_is_409_and_creates_nothing(owner_client, all_keys, respx_mock, history, org,
                                                               second_body):
    route = openai_ok(respx_mock)
    first = reply(owner_client, history, {"content": "Ideas?"}, key="r-2")
    before, used = message_rows(history), reply_tokens_used(org)

    reused = reply(owner_client, history, second_body, key="r-2")

    assert (first.status_code, reused.status_code) == (201, 409)
    assert reused["Content-Type"] == "application/json"
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert message_rows(history) == before
    assert reply_tokens_used(org) == used
    assert route.call_count == 1


def test_same_key_with_another_message_id_is_409(owner_client, all_keys, respx_mock, history):
    route = openai_ok(respx_mock)
    question = Message.objects.get(conversation=history, sequence=1)
    first = reply(owner_client, history, {"message_id": str(question.id)}, key="r-3")

    reused = reply(owner_client, history, {"content": question.content}, key="r-3")
    again = reply(owner_client, history, {"message_id": str(question.id), "stream": False}, key="r-3")

    assert (first.status_code, reused.status_code, again.status_code) == (201, 409, 200)
    assert again.json() == first.json()
    assert Message.objects.filter(conversation=history).count() == 3
    assert route.call_count == 1


def test_retry_after_a_failed_provider_with_another_body_is_409(owner_client, all_keys, respx_mock, history):
    route = respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(401, json={"error": {"message": "bad"}}))
    failed = reply(owner_client, history, {"content": "Ideas?"}, key="r-4")
    before = message_rows(history)

    reused = reply(owner_client, history, {"content": "Other ideas?"}, key="r-4")

    assert (failed.status_code, reused.status_code) == (502, 409)
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert message_rows(history) == before
    assert route.call_count == 1


def test_a_message_key_reused_for_a_reply_and_back_is_409(owner_client, all_keys, respx_mock, history):
    route = openai_ok(respx_mock)
    url = f"/api/conversations/{history.id}/messages"
    posted = owner_client.post(url, {"role": "user", "content": "Ideas?"}, format="json", HTTP_IDEMPOTENCY_KEY="m-1")
    replied = reply(owner_client, history, {"content": "Later?"}, key="r-5")

    as_reply = reply(owner_client, history, {"content": "Ideas?"}, key="m-1")
    as_message = owner_client.post(
        url, {"role": "user", "content": "Later?"}, format="json", HTTP_IDEMPOTENCY_KEY="r-5"
    )

    assert (posted.status_code, replied.status_code) == (201, 201)
    assert (as_reply.status_code, as_message.status_code) == (409, 409)
    assert {as_reply.json()["error"]["code"], as_message.json()["error"]["code"]} == {"idempotency_key_reused"}
    assert Message.objects.filter(conversation=history).count() == 5
    assert route.call_count == 1


# --- generation: read-only, never forged -----------------------------------------------------


def test_generation_in_a_reply_body_is_400(owner_client, all_keys, respx_mock, history):
    route = openai_ok(respx_mock)

    response = reply(owner_client, history, {"content": "Hi", "generation": {"provider": "me"}})

    assert response.status_code == 400
    assert "generation" in response.json()["error"]["fields"]
    assert Message.objects.filter(conversation=history).count() == 2
    assert route.call_count == 0


@pytest.mark.parametrize("stream", [False, True])
def test_crafted_metadata_on_assistant_messages_neither_breaks_nor_forges_a_replay(
    owner_client, all_keys, respx_mock, history, stream
):
    route = openai_ok(respx_mock, prompt_tokens=30, completion_tokens=5)
    crafted = {"usage": "x", "context": 5, "reply_to": "nope", "incomplete": "yes", "provider": 1}
    url = f"/api/conversations/{history.id}/messages"
    assert owner_client.post(url, {"role": "assistant", "content": "Forged", "metadata": crafted},
                             format="json").status_code == 201
    first = reply(owner_client, history, {"content": "Ideas?"}, key="r-6")

    retry = reply(owner_client, history, {"content": "Ideas?", "stream": stream}, key="r-6")

    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry["Content-Type"].startswith("text/event-stream" if stream else "application/json")
    if stream:
        events = parse_sse(b"".join(retry.streaming_content))
        assert [name for name, _ in events] == ["context", "delta", "done"]
        message, usage = events[-1][1]["message"], events[-1][1]["usage"]
    else:
        message, usage = retry.json()["message"], retry.json()["usage"]
    assert message == first.json()["message"]
    assert usage == {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35, "estimated": False}
    assert Message.objects.get(conversation=history, content="Forged").generation is None
    assert route.call_count == 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_message_posted_under_a_replys_derived_key_is_never_replayed_as_a_reply(
    owner_client, all_keys, respx_mock, history, stream
):
    route = openai_ok(respx_mock)
    derived = "reply:" + hashlib.sha256(b"r-7").hexdigest()
    forged = {"usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}, "reply_to": "x", "context": []}
    url = f"/api/conversations/{history.id}/messages"
    posted = owner_client.post(url, {"role": "assistant", "content": "Forged answer", "metadata": forged},
                               format="json", HTTP_IDEMPOTENCY_KEY=derived)

    response = reply(owner_client, history, {"content": "Ideas?", "stream": stream}, key="r-7")

    assert posted.status_code == 201
    assert response.status_code == 409
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Message.objects.filter(conversation=history).count() == 3
    assert route.call_count == 0


# --- reply tokens reserved, then settled or given back ---------------------------------------


def test_reply_tokens_end_as_the_providers_reported_usage(owner_client, all_keys, respx_mock, history, org):
    openai_ok(respx_mock, prompt_tokens=100, completion_tokens=20)

    assert reply(owner_client, history, {"content": "Ideas?"}).status_code == 201

    assert reply_tokens_used(org) == 120


def test_a_failed_provider_gives_its_reservation_back(owner_client, all_keys, respx_mock, history, org):
    respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(401, json={"error": {"message": "bad"}}))

    assert reply(owner_client, history, {"content": "Ideas?"}).status_code == 502

    assert reply_tokens_used(org) == 0


def test_no_provider_configured_gives_its_reservation_back(owner_client, history, org):
    assert reply(owner_client, history, {"content": "Ideas?"}).status_code == 503

    assert reply_tokens_used(org) == 0


def close_unread(response) -> None:
    """What a WSGI server does when the client is gone before the first event: it closes
    the response without reading it (keeping the test's database connection open, as
    Django's test client does when it closes a response)."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


@pytest.mark.django_db(transaction=True)
def test_a_stream_never_read_is_still_completed_and_its_reservation_settled(
    owner_client, all_keys, respx_mock, history, org
):
    response_body, provider_body = sse_response(openai_stream_chunks(["Never ", "read."]), hold_at=2)
    route = respx_mock.post(OPENAI_URL).mock(return_value=response_body)
    response = reply(owner_client, history, {"content": "Ideas?", "stream": True}, key="r-8")
    # The largest reply is held while it is generated.
    assert reply_tokens_used(org) > 49

    close_unread(response)
    provider_body.gate.set()
    assert wait_until_ended(response["X-Reply-Id"]) == "done"

    # Generated apart from the request: completed, stored, and settled at the reported usage.
    assert reply_tokens_used(org) == 49
    retry = reply(owner_client, history, {"content": "Ideas?"}, key="r-8")
    assert retry.status_code == 200
    assert retry.json()["message"]["content"] == "Never read."
    assert route.call_count == 1


@pytest.mark.django_db(transaction=True)
def test_the_reservation_holds_the_largest_reply(owner_client, all_keys, respx_mock, history, org, settings):
    """Past what remains once the reply's largest size is held, the next reply is refused."""
    settings.CHAT_MAX_REPLY_TOKENS = 500
    settings.FREE_PLAN_REPLY_TOKENS = 400
    response_body, provider_body = sse_response(
        openai_stream_chunks(["Slow ", "answer."], prompt_tokens=10, completion_tokens=2), hold_at=2
    )
    respx_mock.post(OPENAI_URL).mock(return_value=response_body)
    streaming = reply(owner_client, history, {"content": "First?", "stream": True})
    chunks = iter(streaming.streaming_content)
    next(chunks)  # the reply is under way (held by the provider), its reservation held

    refused = reply(owner_client, history, {"content": "Second?"})

    assert refused.status_code == 402
    error = refused.json()["error"]
    assert (error["code"], error["quota"], error["limit"]) == ("quota_exceeded", "reply_tokens", 400)
    assert "resets_at" in error
    assert not Message.objects.filter(conversation=history, content="Second?").exists()
    provider_body.gate.set()
    list(chunks)
    assert reply_tokens_used(org) == 12


# --- a reply that ended incomplete -----------------------------------------------------------


def _fail_mid_stream(owner_client, respx_mock, history, key):
    response_body, _ = sse_response(openai_stream_chunks(["Start ", "of ", "reply"]), fail_after=3)
    route = respx_mock.post(OPENAI_URL).mock(return_value=response_body)
    events = parse_sse(b"".join(reply(owner_client, history, {"content": "Ideas?", "stream": True},
                                      key=key).streaming_content))
    assert events[-1][0] == "error"
    return route, events


@pytest.mark.django_db(transaction=True)
def test_retry_of_a_reply_that_failed_mid_stream_is_the_partial_marked_incomplete(
    owner_client, all_keys, respx_mock, history
):
    route, events = _fail_mid_stream(owner_client, respx_mock, history, "r-9")
    partial_id = events[-1][1]["partial_message"]["id"]

    retry = reply(owner_client, history, {"content": "Ideas?"}, key="r-9")

    assert retry.status_code == 200
    body = retry.json()
    assert (body["message"]["id"], body["message"]["content"]) == (partial_id, "Start of ")
    generation = body["message"]["generation"]
    assert generation["status"] == "incomplete"
    assert generation["error"]["code"] == "upstream_unavailable"
    assert body["usage"]["estimated"] is True
    assert Message.objects.filter(conversation=history).count() == 4
    assert route.call_count == 1


@pytest.mark.django_db(transaction=True)
def test_streamed_retry_of_a_reply_that_failed_mid_stream_ends_with_its_error(
    owner_client, all_keys, respx_mock, history
):
    route, first = _fail_mid_stream(owner_client, respx_mock, history, "r-10")

    retry = reply(owner_client, history, {"content": "Ideas?", "stream": True}, key="r-10")

    events = parse_sse(b"".join(retry.streaming_content))
    assert [name for name, _ in events] == ["context", "delta", "error"]
    assert events[1][1]["text"] == "Start of "
    error = events[-1][1]
    assert (error["code"], error["message"]) == (first[-1][1]["code"], first[-1][1]["message"])
    assert error["partial_message"]["generation"]["status"] == "incomplete"
    assert error["partial_message"]["id"] == first[-1][1]["partial_message"]["id"]
    assert route.call_count == 1
