"""Conversations are private to their owner: a teammate in the same organization and a
user of another organization both get 404 for every verb on every endpoint taking an id,
and the conversation with its messages is unchanged after."""

import pytest
from rest_framework.test import APIClient

from accounts.services import organization_create
from conversations.models import Conversation, Message
from tests.conftest import make_client
from tests.conversations.helpers import snapshot

ID_ENDPOINTS = [
    ("get", "/api/conversations/{id}", None),
    ("patch", "/api/conversations/{id}", {"title": "taken over", "status": "archived", "metadata": {}}),
    ("delete", "/api/conversations/{id}", None),
    ("get", "/api/conversations/{id}/messages", None),
    ("post", "/api/conversations/{id}/messages", {"role": "user", "content": "injected"}),
    ("get", "/api/conversations/{id}/messages/recent", None),
]
ENDPOINT_IDS = [f"{method} {path}" for method, path, _ in ID_ENDPOINTS]


def call(client, method, path, body, conversation, **extra):
    url = path.format(id=conversation.id)
    if body is None:
        return getattr(client, method)(url, **extra)
    return getattr(client, method)(url, body, format="json", **extra)


@pytest.mark.parametrize("intruder", ["teammate_client", "outsider_client"])
@pytest.mark.parametrize(("method", "path", "body"), ID_ENDPOINTS, ids=ENDPOINT_IDS)
def test_only_the_owner_reaches_a_conversation(request, conversation, intruder, method, path, body):
    client = request.getfixturevalue(intruder)
    before = snapshot(conversation)

    response = call(client, method, path, body, conversation)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert snapshot(conversation) == before


@pytest.mark.parametrize("intruder", ["teammate_client", "outsider_client"])
def test_idempotency_key_of_someone_elses_message_reveals_nothing(request, owner_client, conversation, intruder):
    owner_client.post(
        f"/api/conversations/{conversation.id}/messages",
        {"role": "user", "content": "mine"},
        format="json",
        headers={"Idempotency-Key": "k1"},
    )
    before = snapshot(conversation)

    response = request.getfixturevalue(intruder).post(
        f"/api/conversations/{conversation.id}/messages",
        {"role": "user", "content": "mine"},
        format="json",
        headers={"Idempotency-Key": "k1"},
    )

    assert response.status_code == 404
    assert "mine" not in response.content.decode()
    assert snapshot(conversation) == before


@pytest.mark.parametrize(("method", "path", "body"), ID_ENDPOINTS, ids=ENDPOINT_IDS)
def test_owner_acting_in_another_of_their_organizations_gets_404(owner, conversation, method, path, body):
    """The token's organization is part of the scope: the same person signed in to a second
    organization does not see the first one's conversations."""
    other_org = organization_create(name="Side project", owner=owner)
    client = make_client(owner, other_org)
    before = snapshot(conversation)

    response = call(client, method, path, body, conversation)

    assert response.status_code == 404
    assert snapshot(conversation) == before


@pytest.mark.parametrize(("method", "path", "body"), ID_ENDPOINTS, ids=ENDPOINT_IDS)
def test_anonymous_caller_gets_401_and_changes_nothing(conversation, method, path, body):
    before = snapshot(conversation)

    response = call(APIClient(), method, path, body, conversation)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert snapshot(conversation) == before


@pytest.mark.parametrize("intruder", ["teammate_client", "outsider_client"])
@pytest.mark.parametrize(
    ("path", "params"),
    [("/api/conversations", {}), ("/api/conversations/search/by-title", {"q": "Q4"})],
)
def test_lists_and_title_search_show_intruders_nothing_of_the_owners(request, conversation, intruder, path, params):
    response = request.getfixturevalue(intruder).get(path, params)

    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize("intruder", ["teammate_client", "outsider_client"])
def test_intruders_own_conversation_lands_in_their_scope_not_the_owners(request, conversation, intruder):
    client = request.getfixturevalue(intruder)

    response = client.post("/api/conversations", {"title": "Q4 mine", "agent_type": "general"}, format="json")

    assert response.status_code == 201
    created = Conversation.objects.get(pk=response.json()["id"])
    assert (created.owner, created.organization) == (client.user, client.organization)
    assert Message.objects.filter(conversation=conversation).count() == 2
