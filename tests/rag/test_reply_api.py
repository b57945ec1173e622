"""POST /api/conversations/{id}/reply without streaming: both messages stored, context with
scores, usage, idempotency, fallback and the failures that keep the user message."""

import httpx
import pytest

from conversations.models import Message
from tests.rag.conftest import (
    GEMINI_URL,
    OPENAI_URL,
    gemini_response,
    openai_completion,
    request_json,
)


def reply_url(conversation):
    return f"/api/conversations/{conversation.id}/reply"


@pytest.fixture
def history(make_conversation):
    return make_conversation(
        messages=[
            ("user", "Our product is a vegan protein bar for runners."),
            ("assistant", "Great, runners care about clean ingredients and energy."),
            ("user", "Budget is 5000 dollars for the launch."),
            ("assistant", "Then focus on Instagram and running clubs."),
        ]
    )


def test_reply_stores_both_messages_with_provider_metadata(owner_client, all_keys, respx_mock, history):
    route = respx_mock.post(OPENAI_URL).mock(
        return_value=httpx.Response(200, json=openai_completion("Sponsor a local 10k.", prompt_tokens=120,
                                                                completion_tokens=8))
    )

    response = owner_client.post(reply_url(history), {"content": "Which event should we sponsor?"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["user_message"]["content"] == "Which event should we sponsor?"
    assert body["user_message"]["role"] == "user"
    assert body["message"]["content"] == "Sponsor a local 10k."
    assert body["message"]["role"] == "assistant"
    assert body["usage"] == {"prompt_tokens": 120, "completion_tokens": 8, "total_tokens": 128, "estimated": False}
    metadata = body["message"]["metadata"]
    assert metadata["provider"] == "openai"
    assert metadata["model"] == "gpt-4o-mini-2024-07-18"
    assert metadata["reply_to"] == body["user_message"]["id"]
    assert isinstance(metadata["response_time_ms"], int)
    assert metadata["usage"]["total_tokens"] == 128
    assert [c["message_id"] for c in metadata["context"]] == [c["message_id"] for c in body["context"]]

    stored = list(Message.objects.filter(conversation=history).order_by("sequence"))
    assert [(m.sequence, m.role) for m in stored][-2:] == [(5, "user"), (6, "assistant")]
    history.refresh_from_db()
    assert history.message_count == 6
    assert history.usage == {"prompt_tokens": 120, "completion_tokens": 8, "total_tokens": 128}
    assert route.call_count == 1
