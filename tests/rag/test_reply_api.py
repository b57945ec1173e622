"""POST /api/conversations/{id}/reply without streaming: both messages stored, context with
scores, usage, idempotency, fallback and the failures that keep the user message."""

import httpx
import pytest

from billing.models import Usage
from conversations.models import Message
from conversations.services import conversation_update
from tests.rag.conftest import (
    GEMINI_URL,
    OPENAI_URL,
    OPENROUTER_URL,
    gemini_response,
    openai_completion,
    reply_url,
    request_json,
    sent_prompt,
)

HISTORY = [
    ("user", "Our product is a vegan protein bar for runners."),
    ("assistant", "Great, runners care about clean ingredients and energy."),
    ("user", "Budget is 5000 dollars for the launch."),
    ("assistant", "Then focus on Instagram and running clubs."),
]


@pytest.fixture
def history(make_conversation):
    return make_conversation(messages=HISTORY)


def openai_ok(respx_mock, text="Sponsor a local 10k.", **usage):
    return respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(200, json=openai_completion(text, **usage)))


def roles_and_contents(conversation):
    return list(Message.objects.filter(conversation=conversation).order_by("sequence").values_list("role", "content"))


def test_reply_stores_both_messages_with_their_generation(owner_client, all_keys, respx_mock, history):
    route = openai_ok(respx_mock, prompt_tokens=120, completion_tokens=8)

    response = owner_client.post(reply_url(history), {"content": "Which event should we sponsor?"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["user_message"]["role"], body["user_message"]["content"]) == ("user", "Which event should we sponsor?")
    assert (body["message"]["role"], body["message"]["content"]) == ("assistant", "Sponsor a local 10k.")
    assert body["usage"] == {"prompt_tokens": 120, "completion_tokens": 8, "total_tokens": 128, "estimated": False}
    generation = body["message"]["generation"]
    assert (generation["provider"], generation["model"]) == ("openai", "gpt-4o-mini-2024-07-18")
    assert generation["reply_to"] == body["user_message"]["id"]
    assert generation["status"] == "complete"
    assert generation["usage"] == body["usage"]
    assert isinstance(generation["response_time_ms"], int)
    assert [c["message_id"] for c in generation["sources"]] == [c["message_id"] for c in body["context"]]
    # The client's metadata shows the response time and nothing server-owned.
    assert body["message"]["metadata"] == {"response_time_ms": generation["response_time_ms"]}
    assert body["user_message"]["generation"] is None

    assert roles_and_contents(history)[-2:] == [
        ("user", "Which event should we sponsor?"),
        ("assistant", "Sponsor a local 10k."),
    ]
    history.refresh_from_db()
    assert history.message_count == 6
    assert history.usage == {"prompt_tokens": 120, "completion_tokens": 8, "total_tokens": 128}
    assert Usage.objects.get(organization=history.organization).reply_tokens == 128
    assert route.call_count == 1


def test_context_returned_with_scores_is_what_the_model_was_sent(owner_client, all_keys, respx_mock, history):
    route = openai_ok(respx_mock)

    body = owner_client.post(reply_url(history), {"content": "Which event?"}, format="json").json()

    prompt = request_json(route)["messages"][1]["content"]
    assert len(body["context"]) == 4
    by_content = {m.content: m for m in Message.objects.filter(conversation=history)}
    for item in body["context"]:
        message = Message.objects.get(id=item["message_id"])
        assert item["role"] == message.role
        assert item["snippet"] == message.content
        assert 0 < item["score"] <= 1
        assert f"[{message.role} · relevance {item['score']:.2f}] {message.content}" in prompt
    # The newest message of the conversation is the most relevant by recency.
    best = max(body["context"], key=lambda item: item["score"])
    assert best["message_id"] == str(by_content["Then focus on Instagram and running clubs."].id)
    assert prompt.endswith("Current message:\nWhich event?")
    # The question itself is not repeated as context.
    assert prompt.count("Which event?") == 1


def test_agent_type_system_prompt_is_sent(owner_client, all_keys, respx_mock, make_conversation):
    route = openai_ok(respx_mock)
    conversation = make_conversation(agent_type="analytics")

    owner_client.post(reply_url(conversation), {"content": "CTR fell 20%"}, format="json")

    system = request_json(route)["messages"][0]
    assert system["role"] == "system"
    assert "marketing analyst" in system["content"]


@pytest.mark.parametrize(
    "provider, url, answer",
    [
        ("gemini", GEMINI_URL, gemini_response("From Gemini.")),
        ("openrouter", OPENROUTER_URL, openai_completion("From OpenRouter.", model="openai/gpt-4o-mini")),
    ],
)
def test_reply_through_each_provider(owner_client, settings, respx_mock, history, provider, url, answer):
    settings.GEMINI_API_KEY = "g-server-key"
    settings.OPENROUTER_API_KEY = "sk-or-server"
    settings.CHAT_PROVIDERS = [provider]
    route = respx_mock.post(url).mock(return_value=httpx.Response(200, json=answer))

    response = owner_client.post(reply_url(history), {"content": "Ideas?"}, format="json")

    assert response.status_code == 201
    assert response.json()["message"]["generation"]["provider"] == provider
    assert "Then focus on Instagram and running clubs." in sent_prompt(route)


def test_failing_provider_falls_back_to_next(owner_client, all_keys, respx_mock, history):
    respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(503, json={"error": {"message": "down"}}))
    respx_mock.post(GEMINI_URL).mock(return_value=httpx.Response(200, json=gemini_response("Backup answer.")))

    response = owner_client.post(reply_url(history), {"content": "Ideas?"}, format="json")

    assert response.status_code == 201
    assert response.json()["message"]["content"] == "Backup answer."
    assert response.json()["message"]["generation"]["provider"] == "gemini"


def test_all_providers_timing_out_is_503_and_user_message_is_kept(owner_client, settings, respx_mock, history):
    settings.OPENAI_API_KEY = "sk-server"
    settings.GEMINI_API_KEY = "g-server"
    respx_mock.post(OPENAI_URL).mock(side_effect=httpx.ReadTimeout("slow"))
    respx_mock.post(GEMINI_URL).mock(side_effect=httpx.ReadTimeout("slow"))

    response = owner_client.post(reply_url(history), {"content": "Still there?"}, format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert "openai timed out" in response.json()["error"]["message"]
    assert "gemini timed out" in response.json()["error"]["message"]
    assert roles_and_contents(history)[-1] == ("user", "Still there?")
    history.refresh_from_db()
    assert history.message_count == 5
    assert history.usage["total_tokens"] == 0


def test_no_provider_configured_is_503_and_user_message_is_kept(owner_client, history):
    response = owner_client.post(reply_url(history), {"content": "Hello?"}, format="json")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_configured"
    assert "OPENAI_API_KEY" in error["message"] and "GEMINI_API_KEY" in error["message"]
    assert roles_and_contents(history)[-1] == ("user", "Hello?")


def test_reply_tokens_exhausted_is_402_with_nothing_written(owner_client, all_keys, respx_mock, history, settings):
    settings.FREE_PLAN_REPLY_TOKENS = 0
    route = openai_ok(respx_mock)

    response = owner_client.post(reply_url(history), {"content": "One more?"}, format="json")

    assert response.status_code == 402
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert response.json()["error"]["limit"] == 0
    assert Message.objects.filter(conversation=history).count() == 4
    assert route.call_count == 0


def test_reply_without_room_for_the_answer_is_402_with_nothing_written(
    owner_client, all_keys, respx_mock, history, settings
):
    # One message left: the question would fit, its answer would not.
    settings.FREE_PLAN_MESSAGES = Message.objects.filter(organization=history.organization).count() + 1
    route = openai_ok(respx_mock)

    response = owner_client.post(reply_url(history), {"content": "One more?"}, format="json")

    assert response.status_code == 402
    assert response.json()["error"]["quota"] == "messages"
    assert Message.objects.filter(conversation=history).count() == 4
    assert route.call_count == 0


def test_reply_with_room_for_exactly_question_and_answer_succeeds(
    owner_client, all_keys, respx_mock, history, settings
):
    settings.FREE_PLAN_MESSAGES = Message.objects.filter(organization=history.organization).count() + 2
    openai_ok(respx_mock)

    response = owner_client.post(reply_url(history), {"content": "Last one?"}, format="json")

    assert response.status_code == 201
    assert Message.objects.filter(conversation=history).count() == 6


def test_archived_conversation_is_409_and_nothing_is_stored(owner_client, all_keys, respx_mock, history):
    conversation_update(conversation=history, status="archived")
    route = openai_ok(respx_mock)

    response = owner_client.post(reply_url(history), {"content": "Hello?"}, format="json")

    assert response.status_code == 409
    assert Message.objects.filter(conversation=history).count() == 4
    assert route.call_count == 0


def test_idempotent_retry_returns_first_reply_and_creates_nothing(owner_client, all_keys, respx_mock, history):
    route = openai_ok(respx_mock)
    headers = {"HTTP_IDEMPOTENCY_KEY": "reply-123"}

    first = owner_client.post(reply_url(history), {"content": "Ideas?"}, format="json", **headers)
    retry = owner_client.post(reply_url(history), {"content": "Ideas?"}, format="json", **headers)

    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == first.json()
    assert Message.objects.filter(conversation=history).count() == 6
    assert route.call_count == 1


def test_retry_after_a_failed_provider_generates_the_missing_reply(owner_client, all_keys, respx_mock, history):
    respx_mock.post(OPENAI_URL).mock(
        side_effect=[httpx.Response(401, json={"error": {"message": "bad"}}),
                     httpx.Response(200, json=openai_completion("Now it works."))]
    )
    headers = {"HTTP_IDEMPOTENCY_KEY": "reply-456"}

    failed = owner_client.post(reply_url(history), {"content": "Ideas?"}, format="json", **headers)
    retry = owner_client.post(reply_url(history), {"content": "Ideas?"}, format="json", **headers)

    assert failed.status_code == 502
    assert retry.status_code == 201
    assert retry.json()["user_message"]["id"] == failed_user_message_id(history)
    assert [role for role, _ in roles_and_contents(history)][-2:] == ["user", "assistant"]
    assert Message.objects.filter(conversation=history, role="user").count() == 3


def failed_user_message_id(conversation):
    return str(Message.objects.filter(conversation=conversation, role="user").latest("sequence").id)


def test_message_id_asks_again_for_an_existing_user_message(owner_client, all_keys, respx_mock, history):
    route = openai_ok(respx_mock, text="Second opinion.")
    question = Message.objects.get(conversation=history, sequence=3)

    response = owner_client.post(reply_url(history), {"message_id": str(question.id)}, format="json")

    assert response.status_code == 201
    assert response.json()["user_message"]["id"] == str(question.id)
    assert response.json()["message"]["generation"]["reply_to"] == str(question.id)
    assert Message.objects.filter(conversation=history).count() == 5
    # The conversation as it was when the question was asked: only the earlier messages.
    context_ids = {item["message_id"] for item in response.json()["context"]}
    assert context_ids == {str(m.id) for m in Message.objects.filter(conversation=history, sequence__lt=3)}
    prompt = request_json(route)["messages"][1]["content"]
    assert prompt.endswith("Current message:\nBudget is 5000 dollars for the launch.")


def test_message_id_of_an_assistant_message_is_400(owner_client, all_keys, history):
    answer = Message.objects.get(conversation=history, sequence=2)

    response = owner_client.post(reply_url(history), {"message_id": str(answer.id)}, format="json")

    assert response.status_code == 400
    assert "message_id" in response.json()["error"]["fields"]


def test_message_id_of_another_conversation_is_404(owner_client, all_keys, history, make_conversation):
    other = make_conversation(title="Other", messages=[("user", "Elsewhere")])
    foreign = Message.objects.get(conversation=other)

    response = owner_client.post(reply_url(history), {"message_id": str(foreign.id)}, format="json")

    assert response.status_code == 404
    assert Message.objects.filter(conversation=history).count() == 4


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "content"),
        ({"content": "   "}, "content"),
        ({"content": "x", "message_id": "7f1f0b8e-3f1e-4a7e-9a53-0a3d1e1b2c3d"}, "content"),
        ({"content": "x", "model": "gpt-5"}, "model"),
        ({"content": "x", "stream": "maybe"}, "stream"),
    ],
)
def test_invalid_reply_bodies_are_400(owner_client, all_keys, history, body, field):
    response = owner_client.post(reply_url(history), body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert Message.objects.filter(conversation=history).count() == 4


def test_outsider_and_teammate_get_404_and_nothing_is_stored(
    outsider_client, teammate_client, all_keys, respx_mock, history
):
    route = openai_ok(respx_mock)

    for client in (outsider_client, teammate_client):
        response = client.post(reply_url(history), {"content": "Let me in"}, format="json")
        assert response.status_code == 404

    assert Message.objects.filter(conversation=history).count() == 4
    assert route.call_count == 0


def test_anonymous_is_401(anon_client, history):
    assert anon_client.post(reply_url(history), {"content": "Hi"}, format="json").status_code == 401


def test_organization_key_serves_its_calls_and_is_never_returned(owner_client, all_keys, respx_mock, history):
    route = openai_ok(respx_mock)
    stored = owner_client.put(
        "/api/organizations/current/provider-keys/openai", {"api_key": "sk-org-own-key-7777"}, format="json"
    )

    response = owner_client.post(reply_url(history), {"content": "Ideas?"}, format="json")

    assert response.status_code == 201
    assert route.calls.last.request.headers["Authorization"] == "Bearer sk-org-own-key-7777"
    for answer in (stored, response, owner_client.get("/api/organizations/current/provider-keys"),
                   owner_client.get(f"/api/conversations/{history.id}/messages")):
        assert "sk-org-own-key" not in answer.content.decode()


def test_another_organizations_key_is_not_used(outsider_client, owner_client, all_keys, respx_mock, history):
    route = openai_ok(respx_mock)
    outsider_client.put(
        "/api/organizations/current/provider-keys/openai", {"api_key": "sk-globex-key-8888"}, format="json"
    )

    owner_client.post(reply_url(history), {"content": "Ideas?"}, format="json")

    assert route.calls.last.request.headers["Authorization"] == "Bearer sk-server-openai-0000"


def test_organization_key_alone_configures_replies(owner_client, respx_mock, history):
    """No server key at all: the organization's own key is enough."""
    route = respx_mock.post(OPENROUTER_URL).mock(return_value=httpx.Response(200, json=openai_completion("ok")))
    owner_client.put(
        "/api/organizations/current/provider-keys/openrouter", {"api_key": "sk-or-own-key-5555"}, format="json"
    )

    response = owner_client.post(reply_url(history), {"content": "Ideas?"}, format="json")

    assert response.status_code == 201
    assert route.calls.last.request.headers["Authorization"] == "Bearer sk-or-own-key-5555"


def test_reply_in_the_schema(owner_client):
    schema = owner_client.get("/api/schema?format=json").json()

    operation = schema["paths"]["/api/conversations/{id}/reply"]["post"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert "application/json" in operation["responses"]["201"]["content"]
