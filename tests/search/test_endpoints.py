"""The seven search endpoints with the real local model (all-MiniLM-L6-v2-int8 on ONNX Runtime)."""

import pytest

from search.models import MessageEmbedding, SearchExclusion
from search.services import text_sha256
from tests.search.conftest import MARKETING_CORPUS, add_message, make_conversation

pytestmark = pytest.mark.django_db

ADS = MARKETING_CORPUS[0]
PARTY = MARKETING_CORPUS[1]


def _contents(response):
    return [hit["content"] for hit in response.json()["results"]]


def test_seed_curl_example_generate_embedding_then_search_for_similar_messages(owner_client, conversation, local_model):
    message = add_message(conversation, "What should be our Q4 focus?")
    add_message(conversation, ADS)
    add_message(conversation, PARTY)

    # "Generate embedding", as in the seed, with real ids.
    stored = owner_client.post(
        "/api/search/embed-and-store",
        {
            "message_id": str(message.id),
            "conversation_id": str(conversation.id),
            "text": "What should be our Q4 focus?",
        },
        format="json",
    )
    assert stored.status_code == 201, stored.json()
    body = stored.json()
    row = MessageEmbedding.objects.get(id=body["id"])
    assert row.message_id == message.id
    assert body["model"] == "all-MiniLM-L6-v2-int8" and body["dimensions"] == 384 == len(row.embedding)
    assert body["status"] == "created"

    batch = owner_client.post("/api/search/batch-embed", {"conversation_id": str(conversation.id)}, format="json")
    assert batch.status_code == 200
    assert (batch.json()["created"], batch.json()["unchanged"]) == (2, 1)

    # "Search for similar messages", as in the seed.
    response = owner_client.post(
        f"/api/search/semantic-search?conversation_id={conversation.id}",
        {"query": "budget allocation", "limit": 5},
        format="json",
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 3
    assert set(results[0]) == {
        "message_id", "conversation_id", "role", "content", "similarity", "created_at", "on_active_branch"
    }
    assert all(hit["conversation_id"] == str(conversation.id) for hit in results)
    similarities = [hit["similarity"] for hit in results]
    assert similarities == sorted(similarities, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in similarities)


def test_budget_allocation_ranks_ad_spend_above_the_office_party(owner_client, conversation, corpus):
    response = owner_client.post(
        f"/api/search/semantic-search?conversation_id={conversation.id}",
        {"query": "budget allocation", "limit": 8},
        format="json",
    )
    assert response.status_code == 200
    contents = _contents(response)
    assert contents.index(ADS) < contents.index(PARTY)
    assert contents[0] == ADS


def test_semantic_neighbours_make_sense_across_the_corpus(owner_client, corpus):
    expectations = {
        "social media performance": "Our Instagram engagement rate dropped by 12% this month.",
        "email marketing copy": "Draft three subject lines for the Black Friday email campaign.",
        "search engine ranking problems": "The SEO audit found broken links on the pricing page.",
    }
    for query, expected in expectations.items():
        response = owner_client.get("/api/search/semantic-search/global", {"query": query, "limit": 3})
        assert response.status_code == 200
        assert _contents(response)[0] == expected, query


def test_similarity_is_one_minus_cosine_distance(owner_client, conversation, local_model):
    import numpy as np

    message = add_message(conversation, ADS)
    owner_client.post(
        "/api/search/embed-and-store",
        {"message_id": str(message.id), "conversation_id": str(conversation.id)},
        format="json",
    )
    response = owner_client.post("/api/search/semantic-search", {"query": "budget allocation"}, format="json")
    a, b = np.array(local_model.embed_one("budget allocation")), np.array(local_model.embed_one(ADS))
    expected = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert response.json()["results"][0]["similarity"] == pytest.approx(expected, abs=1e-4)


def test_min_similarity_filters_weak_matches(owner_client, corpus):
    response = owner_client.get(
        "/api/search/semantic-search/global", {"query": "budget allocation", "limit": 8, "min_similarity": 0.25}
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert results and all(hit["similarity"] >= 0.25 for hit in results)
    assert PARTY not in _contents(response)


def test_limit_outside_1_to_50_is_a_400(owner_client, conversation):
    for limit in (0, 51):
        response = owner_client.post("/api/search/semantic-search", {"query": "x", "limit": limit}, format="json")
        assert response.status_code == 400
        assert "limit" in response.json()["error"]["fields"]
    response = owner_client.get("/api/search/semantic-search/global", {"query": "x", "limit": 51})
    assert response.status_code == 400


def test_unknown_body_fields_are_rejected(owner_client, conversation):
    response = owner_client.post(
        "/api/search/semantic-search", {"query": "x", "organization_id": "whatever"}, format="json"
    )
    assert response.status_code == 400
    assert "organization_id" in response.json()["error"]["fields"]


def test_hybrid_mode_fuses_full_text_and_vectors(owner_client, corpus):
    response = owner_client.post(
        "/api/search/semantic-search",
        {"query": "Black Friday subject lines", "mode": "hybrid", "limit": 3},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["mode"] == "hybrid"
    assert _contents(response)[0] == "Draft three subject lines for the Black Friday email campaign."


def test_hybrid_mode_with_a_2000_character_query_still_returns_results(owner_client, corpus):
    query = ("We need to decide how much budget to spend on ads, " * 60)[:2000]
    assert len(query) == 2000
    for method in ("post", "get"):
        if method == "post":
            response = owner_client.post(
                "/api/search/semantic-search", {"query": query, "mode": "hybrid", "limit": 5}, format="json"
            )
        else:
            response = owner_client.get(
                "/api/search/semantic-search/global", {"query": query, "mode": "hybrid", "limit": 5}
            )
        assert response.status_code == 200
        assert response.json()["count"] >= 1
        assert _contents(response)[0] == ADS


def test_embed_text_returns_a_384_dimension_vector_and_stores_nothing(owner_client, local_model):
    response = owner_client.post("/api/search/embed-text", {"text": "budget allocation"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "all-MiniLM-L6-v2-int8"
    assert body["dimensions"] == 384 == len(body["embedding"])
    assert MessageEmbedding.objects.count() == 0


def test_embed_text_needs_text(owner_client):
    response = owner_client.post("/api/search/embed-text", {"text": ""}, format="json")
    assert response.status_code == 400
    assert "text" in response.json()["error"]["fields"]


def test_embedding_the_same_text_again_is_a_no_op(owner_client, conversation, local_model):
    message = add_message(conversation, ADS)
    payload = {"message_id": str(message.id), "conversation_id": str(conversation.id)}
    first = owner_client.post("/api/search/embed-and-store", payload, format="json")
    row = MessageEmbedding.objects.get(message=message)
    again = owner_client.post("/api/search/embed-and-store", payload, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["status"] == "unchanged"
    assert again.json()["id"] == first.json()["id"]
    after = MessageEmbedding.objects.get(message=message)
    assert after.updated_at == row.updated_at
    assert MessageEmbedding.objects.filter(message=message).count() == 1


def test_changed_text_is_re_embedded_in_place(owner_client, conversation, local_model):
    message = add_message(conversation, ADS)
    payload = {"message_id": str(message.id), "conversation_id": str(conversation.id)}
    first = owner_client.post("/api/search/embed-and-store", payload, format="json").json()
    changed = owner_client.post(
        "/api/search/embed-and-store", {**payload, "text": "Office party on Friday"}, format="json"
    )
    assert changed.status_code == 200
    assert changed.json()["status"] == "updated"
    assert changed.json()["id"] == first["id"]
    row = MessageEmbedding.objects.get(message=message)
    assert row.text_sha256 == text_sha256("Office party on Friday") != first["text_sha256"]


def test_embed_and_store_needs_the_message_to_belong_to_the_conversation(owner_client, owner, org, local_model):
    first, second = make_conversation(owner, org), make_conversation(owner, org, title="Other")
    message = add_message(first, ADS)
    response = owner_client.post(
        "/api/search/embed-and-store",
        {"message_id": str(message.id), "conversation_id": str(second.id)},
        format="json",
    )
    assert response.status_code == 404
    assert not MessageEmbedding.objects.exists()


def test_deleting_an_embedding_takes_the_message_out_of_search_until_embedded_on_purpose(
    owner_client, conversation, corpus
):
    ads = corpus[0]
    embedding = MessageEmbedding.objects.get(message=ads)
    response = owner_client.delete(f"/api/search/embeddings/{embedding.id}")
    assert response.status_code == 204
    assert not MessageEmbedding.objects.filter(message=ads).exists()
    assert SearchExclusion.objects.filter(message=ads).exists()

    search = {"query": "budget allocation", "limit": 8}
    assert ADS not in _contents(owner_client.post("/api/search/semantic-search", search, format="json"))
    hybrid = {**search, "query": "spend on ads", "mode": "hybrid"}
    assert ADS not in _contents(owner_client.post("/api/search/semantic-search", hybrid, format="json"))

    # A whole-conversation batch keeps the exclusion; naming the message brings it back.
    batch = owner_client.post("/api/search/batch-embed", {"conversation_id": str(conversation.id)}, format="json")
    assert batch.json()["skipped"] == 1
    assert not MessageEmbedding.objects.filter(message=ads).exists()
    again = owner_client.post(
        "/api/search/embed-and-store",
        {"message_id": str(ads.id), "conversation_id": str(conversation.id)},
        format="json",
    )
    assert again.status_code == 201
    assert not SearchExclusion.objects.filter(message=ads).exists()
    assert _contents(owner_client.post("/api/search/semantic-search", search, format="json"))[0] == ADS


def test_batch_embed_by_message_ids(owner_client, conversation, local_model):
    messages = [add_message(conversation, text) for text in MARKETING_CORPUS[:3]]
    response = owner_client.post(
        "/api/search/batch-embed", {"message_ids": [str(m.id) for m in messages]}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["requested"], body["created"]) == (3, 3)
    rows = {row.message_id: row.id for row in MessageEmbedding.objects.all()}
    assert {item["message_id"]: item["embedding_id"] for item in body["results"]} == {
        str(k): str(v) for k, v in rows.items()
    }


def test_batch_embed_takes_at_most_256_ids_and_exactly_one_form(owner_client, conversation):
    import uuid

    too_many = owner_client.post(
        "/api/search/batch-embed", {"message_ids": [str(uuid.uuid4()) for _ in range(257)]}, format="json"
    )
    assert too_many.status_code == 400
    both = owner_client.post(
        "/api/search/batch-embed",
        {"message_ids": [str(uuid.uuid4())], "conversation_id": str(conversation.id)},
        format="json",
    )
    assert both.status_code == 400
    neither = owner_client.post("/api/search/batch-embed", {}, format="json")
    assert neither.status_code == 400


def test_embedding_stats_count_by_model_and_coverage(owner_client, conversation, corpus):
    add_message(conversation, "Not embedded yet")
    owner_client.delete(f"/api/search/embeddings/{MessageEmbedding.objects.get(message=corpus[1]).id}")
    response = owner_client.get("/api/search/embedding-stats")
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "all-MiniLM-L6-v2-int8" and body["provider"] == "local" and body["dimensions"] == 384
    assert body["total_messages"] == len(MARKETING_CORPUS) + 1
    assert body["embedded_messages"] == len(MARKETING_CORPUS) - 1
    assert body["excluded_messages"] == 1
    assert body["pending_messages"] == 1
    assert body["coverage"] == pytest.approx((len(MARKETING_CORPUS) - 1) / (len(MARKETING_CORPUS) + 1), abs=1e-4)
    assert body["by_model"] == [
        {"model": "all-MiniLM-L6-v2-int8", "dimensions": 384, "count": len(MARKETING_CORPUS) - 1}
    ]


def test_search_needs_authentication(anon_client):
    assert anon_client.post("/api/search/semantic-search", {"query": "x"}, format="json").status_code == 401
    assert anon_client.get("/api/search/embedding-stats").status_code == 401


def _embeddings_used(client):
    response = client.get("/api/billing/usage")
    assert response.status_code == 200
    return response.json()["embeddings"]["used"]


def test_embeddings_are_counted_against_the_organizations_usage(
    owner_client, conversation, local_model, django_capture_on_commit_callbacks
):
    message = add_message(conversation, ADS)
    assert _embeddings_used(owner_client) == 0
    payload = {"message_id": str(message.id), "conversation_id": str(conversation.id)}
    owner_client.post("/api/search/embed-and-store", payload, format="json")
    owner_client.post("/api/search/embed-and-store", payload, format="json")  # unchanged: not counted
    assert _embeddings_used(owner_client) == 1
    owner_client.post("/api/search/embed-text", {"text": "budget"}, format="json")
    assert _embeddings_used(owner_client) == 2
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            f"/api/conversations/{conversation.id}/messages", {"role": "user", "content": PARTY}, format="json"
        )
    assert _embeddings_used(owner_client) == 3


def test_seed_flow_with_automatic_embedding_then_generate_embedding_and_search(
    owner_client, local_model, django_capture_on_commit_callbacks
):
    """The seed's whole "Add Message & Get Context" walk-through: the message is embedded
    automatically, so "Generate embedding" finds it done (200) and answers its id."""
    conversation = owner_client.post(
        "/api/conversations", {"title": "Q4 Marketing Strategy", "agent_type": "strategy"}, format="json"
    ).json()
    with django_capture_on_commit_callbacks(execute=True):
        for content in ("What should be our Q4 focus?", ADS, PARTY):
            added = owner_client.post(
                f"/api/conversations/{conversation['id']}/messages",
                {"role": "user", "content": content},
                format="json",
            )
            assert added.status_code == 201
    first = owner_client.get(f"/api/conversations/{conversation['id']}/messages").json()["results"][0]
    generated = owner_client.post(
        "/api/search/embed-and-store",
        {"message_id": first["id"], "conversation_id": conversation["id"], "text": "What should be our Q4 focus?"},
        format="json",
    )
    assert generated.status_code == 200
    assert generated.json()["status"] == "unchanged"
    assert MessageEmbedding.objects.get(id=generated.json()["id"]).message_id.hex == first["id"].replace("-", "")

    response = owner_client.post(
        f"/api/search/semantic-search?conversation_id={conversation['id']}",
        {"query": "budget allocation", "limit": 5},
        format="json",
    )
    assert response.status_code == 200
    assert _contents(response)[0] == ADS
    assert len(response.json()["results"]) == 3


def test_an_empty_conversation_id_is_a_400_not_a_search_of_every_conversation(owner_client, corpus):
    response = owner_client.post("/api/search/semantic-search?conversation_id=", {"query": "ads"}, format="json")
    assert response.status_code == 400
    assert "conversation_id" in response.json()["error"]["fields"]


def test_an_empty_limit_in_the_query_string_is_a_400(owner_client, corpus):
    response = owner_client.get("/api/search/semantic-search/global", {"query": "ads", "limit": ""})
    assert response.status_code == 400
    assert "limit" in response.json()["error"]["fields"]
