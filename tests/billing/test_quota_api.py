"""Quotas enforced through the API: a message past the plan's quota is a 402
quota_exceeded naming the limit and when it resets, with nothing written."""

import pytest
from django.test import override_settings

from billing import selectors
from billing.models import Usage
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(owner_client):
    response = owner_client.post(
        "/api/conversations", {"title": "Launch plan", "agent_type": "strategy"}, format="json"
    )
    assert response.status_code == 201, response.json()
    return Conversation.objects.get(pk=response.json()["id"])


def post_message(client, conversation, content="Draft the launch email", **kwargs):
    return client.post(
        f"/api/conversations/{conversation.id}/messages", {"role": "user", "content": content}, format="json", **kwargs
    )


@override_settings(FREE_PLAN_MESSAGES=2)
def test_a_message_past_the_quota_is_402_with_nothing_written(owner_client, org, conversation):
    assert post_message(owner_client, conversation, "one").status_code == 201
    assert post_message(owner_client, conversation, "two").status_code == 201

    response = post_message(owner_client, conversation, "three")

    assert response.status_code == 402
    error = response.json()["error"]
    current = selectors.entitlement(org)
    assert error["code"] == "quota_exceeded"
    assert error["limit"] == 2
    assert error["resets_at"] == current.period_end.isoformat().replace("+00:00", "Z")
    assert "2 messages" in error["message"]
    assert list(
        Message.objects.filter(conversation=conversation).order_by("sequence").values_list("content", flat=True)
    ) == ["one", "two"]
    conversation.refresh_from_db()
    assert conversation.message_count == 2
    assert Usage.objects.get(organization=org).messages == 2


@override_settings(FREE_PLAN_MESSAGES=1)
def test_a_retry_with_the_same_idempotency_key_is_not_counted_again(owner_client, org, conversation):
    first = post_message(owner_client, conversation, headers={"Idempotency-Key": "k-1"})
    retry = post_message(owner_client, conversation, headers={"Idempotency-Key": "k-1"})

    assert (first.status_code, retry.status_code) == (201, 200)
    assert Usage.objects.get(organization=org).messages == 1


@override_settings(FREE_PLAN_MESSAGES=1)
def test_the_quota_is_shared_by_the_organizations_members(owner_client, teammate_client, org, conversation):
    assert post_message(owner_client, conversation).status_code == 201
    response = teammate_client.post("/api/conversations", {"title": "Mine", "agent_type": "content"}, format="json")
    teammate_conversation = Conversation.objects.get(pk=response.json()["id"])

    refused = post_message(teammate_client, teammate_conversation)

    assert refused.status_code == 402
    assert not Message.objects.filter(conversation=teammate_conversation).exists()


@override_settings(FREE_PLAN_MESSAGES=1)
def test_another_organizations_usage_does_not_count(owner_client, outsider_client, conversation):
    assert post_message(owner_client, conversation).status_code == 201
    response = outsider_client.post("/api/conversations", {"title": "Theirs", "agent_type": "content"}, format="json")
    theirs = Conversation.objects.get(pk=response.json()["id"])

    assert post_message(outsider_client, theirs).status_code == 201
