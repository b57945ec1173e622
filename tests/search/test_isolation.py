"""Another organization's user (and a teammate in the same organization: conversations
are private to their owner) never sees, embeds, counts or deletes foreign vectors."""

import pytest

from search.models import MessageEmbedding, SearchExclusion
from tests.search.conftest import ADS_TEXT, add_message, make_conversation

pytestmark = pytest.mark.django_db


@pytest.fixture
def foreign_client(request):
    """Run each test as the outsider (another organization) and as the teammate (same
    organization, not the owner)."""
    return request.getfixturevalue(request.param)


both_intruders = pytest.mark.parametrize("foreign_client", ["outsider_client", "teammate_client"], indirect=True)


def _snapshot():
    return sorted(
        MessageEmbedding.objects.values_list("id", "message_id", "model", "text_sha256", "updated_at")
    ), sorted(SearchExclusion.objects.values_list("message_id", flat=True))


@both_intruders
def test_intruder_search_never_returns_foreign_messages(foreign_client, conversation, corpus):
    own = make_conversation(foreign_client.user, foreign_client.organization, title="Mine")
    mine = add_message(own, ADS_TEXT)
    foreign_client.post(
        "/api/search/embed-and-store", {"message_id": str(mine.id), "conversation_id": str(own.id)}, format="json"
    )
    for mode in ("vector", "hybrid"):
        response = foreign_client.get(
            "/api/search/semantic-search/global", {"query": "budget allocation", "limit": 50, "mode": mode}
        )
        assert response.status_code == 200
        assert [hit["message_id"] for hit in response.json()["results"]] == [str(mine.id)]
        body = foreign_client.post("/api/search/semantic-search", {"query": "ads", "mode": mode}, format="json")
        assert [hit["message_id"] for hit in body.json()["results"]] == [str(mine.id)]


@both_intruders
def test_intruder_cannot_search_a_foreign_conversation(foreign_client, conversation, corpus):
    response = foreign_client.post(
        f"/api/search/semantic-search?conversation_id={conversation.id}", {"query": "budget allocation"}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@both_intruders
def test_intruder_stats_count_only_their_own(foreign_client, corpus):
    response = foreign_client.get("/api/search/embedding-stats")
    assert response.status_code == 200
    body = response.json()
    assert (body["total_messages"], body["embedded_messages"], body["by_model"]) == (0, 0, [])


@both_intruders
def test_intruder_cannot_delete_a_foreign_embedding(foreign_client, corpus):
    before = _snapshot()
    embedding = MessageEmbedding.objects.get(message=corpus[0])
    response = foreign_client.delete(f"/api/search/embeddings/{embedding.id}")
    assert response.status_code == 404
    assert _snapshot() == before


@both_intruders
def test_intruder_cannot_embed_and_store_a_foreign_message(foreign_client, conversation, corpus):
    fresh = add_message(conversation, "A brand new message")
    before = _snapshot()
    own = make_conversation(foreign_client.user, foreign_client.organization, title="Mine")
    attempts = [
        {"message_id": str(fresh.id), "conversation_id": str(conversation.id)},
        # A foreign message through the intruder's own conversation id.
        {"message_id": str(fresh.id), "conversation_id": str(own.id)},
        {"message_id": str(fresh.id), "conversation_id": str(conversation.id), "text": "overwrite"},
        {"message_id": str(corpus[0].id), "conversation_id": str(conversation.id), "text": "overwrite"},
    ]
    for payload in attempts:
        response = foreign_client.post("/api/search/embed-and-store", payload, format="json")
        assert response.status_code == 404, payload
    assert _snapshot() == before


@both_intruders
def test_intruder_batch_embed_with_any_foreign_id_is_a_404_with_nothing_written(foreign_client, conversation, corpus):
    fresh = add_message(conversation, "A brand new message")
    own = make_conversation(foreign_client.user, foreign_client.organization, title="Mine")
    mine = add_message(own, "My own message")
    before = _snapshot()
    response = foreign_client.post(
        "/api/search/batch-embed", {"message_ids": [str(mine.id), str(fresh.id)]}, format="json"
    )
    assert response.status_code == 404
    response = foreign_client.post("/api/search/batch-embed", {"conversation_id": str(conversation.id)}, format="json")
    assert response.status_code == 404
    assert _snapshot() == before
    assert not MessageEmbedding.objects.filter(message=mine).exists()


def test_owner_batch_embed_with_one_unknown_id_writes_nothing(owner_client, conversation, local_model):
    import uuid

    message = add_message(conversation, ADS_TEXT)
    response = owner_client.post(
        "/api/search/batch-embed", {"message_ids": [str(message.id), str(uuid.uuid4())]}, format="json"
    )
    assert response.status_code == 404
    assert not MessageEmbedding.objects.exists()


def test_deleting_a_conversation_leaves_no_vectors(owner_client, conversation, corpus):
    assert MessageEmbedding.objects.filter(conversation=conversation).count() == len(corpus)
    response = owner_client.delete(f"/api/conversations/{conversation.id}")
    assert response.status_code == 204
    assert not MessageEmbedding.objects.exists()
