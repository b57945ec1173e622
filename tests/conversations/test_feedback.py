"""Feedback on replies: PUT|DELETE /api/conversations/{id}/messages/{message_id}/feedback,
shown on the message, counted at /metrics and in the admin, kept in the export."""

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import User
from conversations.models import Message
from conversations.services import message_create
from tests.conversations.helpers import error_fields


def reply(conversation, *, provider="openai", model="gpt-4o-mini-2024-07-18", content="Sponsor a local 10k."):
    message, _ = message_create(
        conversation=conversation,
        role="assistant",
        content=content,
        generation={
            "provider": provider,
            "model": model,
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "estimated": False},
            "response_time_ms": 12,
            "sources": [],
            "status": "complete",
        },
    )
    return message


def feedback_url(message) -> str:
    return f"/api/conversations/{message.conversation_id}/messages/{message.id}/feedback"


@pytest.fixture
def answered(make_conversation):
    conversation = make_conversation(title="Launch plan", agent_type="strategy")
    message_create(conversation=conversation, role="user", content="Which event should we sponsor?")
    return reply(conversation)


def stored_feedback(message) -> tuple:
    return Message.objects.values_list("feedback_rating", "feedback_comment").get(pk=message.pk)


def test_rating_a_reply_stores_it_and_returns_it_on_the_message(owner_client, answered):
    response = owner_client.put(feedback_url(answered), {"rating": "up", "comment": "Spot on"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"] == str(answered.id)
    assert body["feedback"]["rating"] == "up"
    assert body["feedback"]["comment"] == "Spot on"
    assert body["feedback"]["rated_at"]
    assert stored_feedback(answered) == ("up", "Spot on")

    listed = owner_client.get(f"/api/conversations/{answered.conversation_id}/messages").json()["results"]
    assert [m["feedback"] for m in listed] == [None, body["feedback"]]


def test_rating_again_replaces_the_rating_with_200(owner_client, answered):
    owner_client.put(feedback_url(answered), {"rating": "up", "comment": "Spot on"}, format="json")

    response = owner_client.put(feedback_url(answered), {"rating": "down"}, format="json")

    assert response.status_code == 200
    assert response.json()["feedback"]["rating"] == "down"
    assert response.json()["feedback"]["comment"] == ""
    assert stored_feedback(answered) == ("down", "")


def test_deleting_feedback_takes_it_back(owner_client, answered):
    owner_client.put(feedback_url(answered), {"rating": "down", "comment": "Too vague"}, format="json")

    response = owner_client.delete(feedback_url(answered))

    assert response.status_code == 204
    assert stored_feedback(answered) == (None, "")
    message = owner_client.get(f"/api/conversations/{answered.conversation_id}/messages").json()["results"][-1]
    assert message["feedback"] is None
    # Taking back a rating that is not there is a 204 too (a retried DELETE).
    assert owner_client.delete(feedback_url(answered)).status_code == 204


def test_feedback_on_a_user_message_is_a_400_naming_message_id(owner_client, answered):
    question = Message.objects.get(conversation_id=answered.conversation_id, role="user")

    response = owner_client.put(feedback_url(question), {"rating": "up"}, format="json")

    assert response.status_code == 400
    assert "message_id" in error_fields(response)
    assert stored_feedback(question) == (None, "")
    assert owner_client.delete(feedback_url(question)).status_code == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "rating"),
        ({"rating": "meh"}, "rating"),
        ({"rating": None}, "rating"),
        ({"rating": 1}, "rating"),
        ({"rating": "up", "comment": "x" * 2001}, "comment"),
        ({"rating": "up", "comment": None}, "comment"),
        ({"rating": "up", "score": 5}, "score"),
    ],
)
def test_bad_feedback_is_a_400_naming_the_field(owner_client, answered, body, field):
    response = owner_client.put(feedback_url(answered), body, format="json")

    assert response.status_code == 400
    assert field in error_fields(response)
    assert stored_feedback(answered) == (None, "")


def test_others_cannot_rate_or_unrate_a_reply(owner_client, teammate_client, outsider_client, anon_client, answered):
    owner_client.put(feedback_url(answered), {"rating": "up"}, format="json")

    for client in (teammate_client, outsider_client):
        assert client.put(feedback_url(answered), {"rating": "down"}, format="json").status_code == 404
        assert client.delete(feedback_url(answered)).status_code == 404
    assert anon_client.put(feedback_url(answered), {"rating": "down"}, format="json").status_code == 401

    assert stored_feedback(answered) == ("up", "")


def test_a_message_of_another_conversation_is_a_404(owner_client, make_conversation, answered):
    other = make_conversation(title="Other")
    url = f"/api/conversations/{other.id}/messages/{answered.id}/feedback"

    assert owner_client.put(url, {"rating": "up"}, format="json").status_code == 404
    assert stored_feedback(answered) == (None, "")


def scrape_feedback(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    counts = {}
    for family in text_string_to_metric_families(response.content.decode()):
        if family.name == "raptorflow_message_feedback":
            for sample in family.samples:
                labels = sample.labels
                counts[(labels["agent_type"], labels["provider"], labels["model"], labels["rating"])] = sample.value
    return counts


def test_feedback_is_counted_per_agent_type_provider_and_model_in_metrics(owner_client, anon_client, make_conversation):
    strategy = make_conversation(title="Strategy", agent_type="strategy")
    content = make_conversation(title="Copy", agent_type="content")
    ratings = [
        (reply(strategy), "up"),
        (reply(strategy), "up"),
        (reply(strategy, provider="gemini", model="gemini-2.5-flash"), "down"),
        (reply(content), "down"),
    ]
    unrated = reply(content)
    for message, rating in ratings:
        assert owner_client.put(feedback_url(message), {"rating": rating}, format="json").status_code == 201

    counts = scrape_feedback(anon_client)

    assert counts == {
        ("strategy", "openai", "gpt-4o-mini-2024-07-18", "up"): 2,
        ("strategy", "gemini", "gemini-2.5-flash", "down"): 1,
        ("content", "openai", "gpt-4o-mini-2024-07-18", "down"): 1,
    }
    # Taken back: no longer counted. The unrated reply never was.
    owner_client.delete(feedback_url(ratings[0][0]))
    assert scrape_feedback(anon_client)[("strategy", "openai", "gpt-4o-mini-2024-07-18", "up")] == 1
    assert Message.objects.get(pk=unrated.pk).feedback_rating is None


@pytest.fixture
def admin_client(db):
    operator = User.objects.create_superuser(email="ops@raptorflow.test", password="not-used-1234")
    client = Client()
    client.force_login(operator)
    return client


def test_the_admin_shows_feedback_counts(owner_client, answered, admin_client):
    owner_client.put(feedback_url(answered), {"rating": "down", "comment": "Too vague"}, format="json")

    response = admin_client.get("/admin/conversations/ratedmessage/")

    assert response.status_code == 200
    counts = response.context["feedback_counts"]
    assert counts == [
        {
            "agent_type": "strategy",
            "provider": "openai",
            "model": "gpt-4o-mini-2024-07-18",
            "rating": "down",
            "count": 1,
        }
    ]
    page = response.content.decode()
    assert 'id="feedback-counts"' in page and "Too vague" in page


def test_the_export_includes_feedback(owner_client, answered):
    owner_client.put(feedback_url(answered), {"rating": "up", "comment": "Spot on"}, format="json")

    export = owner_client.get("/api/auth/me/export").json()

    messages = export["conversations"][0]["messages"]
    assert [m["feedback"]["rating"] if m["feedback"] else None for m in messages] == [None, "up"]
    assert messages[1]["feedback"]["comment"] == "Spot on"
