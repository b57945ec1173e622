"""backfill_embeddings and reindex_embeddings."""

import io
import json
from collections import Counter

import httpx
import pytest
from django.core.management import CommandError, call_command

from search import selectors, tenant_indexes, vector_index
from search.models import ActiveEmbeddingModel, MessageEmbedding, SearchExclusion, TenantVectorIndex
from tests.search.conftest import MARKETING_CORPUS, add_message, make_conversation

pytestmark = pytest.mark.django_db

OPENAI_URL = "https://api.openai.com/v1/embeddings"


def _run(command, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _openai_ok(request):
    inputs = json.loads(request.content)["input"]
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": [0.1 + i] * 1536} for i in range(len(inputs))],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        },
    )


OPENAI_DOWN = httpx.Response(503, json={"error": {"message": "down"}})


@pytest.fixture
def messages(conversation):
    return [add_message(conversation, text) for text in MARKETING_CORPUS]


@pytest.fixture
def use_openai(settings):
    settings.EMBEDDING_PROVIDER = "openai"
    settings.OPENAI_API_KEY = "sk-test"
    settings.PROVIDER_MAX_RETRIES = 0


def _per_message():
    return Counter(MessageEmbedding.objects.values_list("message_id", flat=True))


def test_backfill_embeds_every_missing_message_with_progress_and_a_summary(messages, local_model):
    out, err = _run("backfill_embeddings", "--batch-size", "3")
    assert set(_per_message()) == {m.id for m in messages}
    assert f"{len(messages)} embedded" in out and "0 remaining" in out
    # tqdm's bar: count, elapsed<ETA and rate.
    assert f"{len(messages)}/{len(messages)}" in err and "msg/s" in err and "<" in err


def test_backfill_resumes_after_an_interruption_and_never_duplicates(messages, local_model):
    out, _ = _run("backfill_embeddings", "--limit", "3")
    assert "3 embedded" in out
    assert len(_per_message()) == 3
    out, _ = _run("backfill_embeddings", "--batch-size", "2")
    assert f"{len(messages) - 3} embedded" in out
    out, _ = _run("backfill_embeddings")
    assert "0 embedded" in out and "of 0 pending" in out
    assert set(_per_message().values()) == {1}
    assert set(_per_message()) == {m.id for m in messages}


def test_backfill_stopped_by_an_outage_keeps_its_work_and_resumes(use_openai, respx_mock, messages):
    route = respx_mock.post(OPENAI_URL).mock(side_effect=[_openai_ok, OPENAI_DOWN])
    with pytest.raises(CommandError, match="Run it again to resume"):
        _run("backfill_embeddings", "--batch-size", "3")
    assert len(_per_message()) == 3
    route.mock(side_effect=_openai_ok)
    out, _ = _run("backfill_embeddings", "--batch-size", "3")
    assert f"{len(messages) - 3} embedded" in out
    assert set(_per_message()) == {m.id for m in messages}
    assert set(_per_message().values()) == {1}


def test_backfill_fills_what_a_provider_outage_left(
    use_openai, respx_mock, owner_client, conversation, django_capture_on_commit_callbacks
):
    route = respx_mock.post(OPENAI_URL).mock(return_value=OPENAI_DOWN)
    ids = []
    for text in MARKETING_CORPUS[:3]:
        with django_capture_on_commit_callbacks(execute=True):
            response = owner_client.post(
                f"/api/conversations/{conversation.id}/messages", {"role": "user", "content": text}, format="json"
            )
        assert response.status_code == 201
        ids.append(response.json()["id"])
    assert route.call_count == 3 and not MessageEmbedding.objects.exists()

    route.mock(side_effect=_openai_ok)
    out, _ = _run("backfill_embeddings")
    assert "3 embedded" in out
    assert sorted(str(m) for m in _per_message()) == sorted(ids)
    assert set(MessageEmbedding.objects.values_list("model", flat=True)) == {"text-embedding-3-small"}


def test_backfill_skips_messages_whose_embedding_was_deleted_on_purpose(owner_client, messages, local_model):
    _run("backfill_embeddings")
    deleted = MessageEmbedding.objects.get(message=messages[0])
    assert owner_client.delete(f"/api/search/embeddings/{deleted.id}").status_code == 204
    out, _ = _run("backfill_embeddings")
    assert "0 embedded" in out
    assert not MessageEmbedding.objects.filter(message=messages[0]).exists()
    assert SearchExclusion.objects.filter(message=messages[0]).exists()


def test_backfill_filters_by_organization_and_conversation(owner, org, outsider, local_model):
    first, second = make_conversation(owner, org), make_conversation(owner, org, title="Other")
    elsewhere = make_conversation(outsider)
    in_first = add_message(first, MARKETING_CORPUS[0])
    in_second = add_message(second, MARKETING_CORPUS[1])
    foreign = add_message(elsewhere, MARKETING_CORPUS[2])

    _run("backfill_embeddings", "--conversation", str(first.id))
    assert set(_per_message()) == {in_first.id}
    _run("backfill_embeddings", "--org", str(org.id))
    assert set(_per_message()) == {in_first.id, in_second.id}
    _run("backfill_embeddings")
    assert set(_per_message()) == {in_first.id, in_second.id, foreign.id}


def test_backfill_rebuilds_an_index_an_interrupted_build_left_invalid(messages, local_model):
    """A CONCURRENTLY build cut short (a deploy, a cancelled job) leaves an INVALID index
    that IF NOT EXISTS takes for done and the planner never uses; the next backfill (or
    ingestion, or reindex) builds it again."""
    from django.db import connection

    from documents.search_plan import CHUNK_VECTORS
    from search.providers import active_spec

    model = active_spec().model
    for table in (vector_index.MESSAGE_VECTORS, CHUNK_VECTORS):
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass",
                [vector_index.index_name(model, table=table)],
            )
        assert not vector_index.index_exists(model, table=table)

    _run("backfill_embeddings")

    for table in (vector_index.MESSAGE_VECTORS, CHUNK_VECTORS):
        assert vector_index.index_exists(model, table=table), table.db_table


def test_backfill_dry_run_writes_nothing(messages):
    out, _ = _run("backfill_embeddings", "--dry-run")
    assert f"{len(messages)} messages would be embedded with all-MiniLM-L6-v2-int8" in out
    assert not MessageEmbedding.objects.exists()


def test_reindex_moves_search_to_the_new_model_and_drops_the_old_vectors(
    settings, respx_mock, owner_client, messages, local_model
):
    _run("backfill_embeddings")
    old_index = vector_index.index_name("all-MiniLM-L6-v2-int8")
    assert vector_index.index_exists("all-MiniLM-L6-v2-int8")
    settings.OPENAI_API_KEY = "sk-test"  # the new model's key; EMBEDDING_PROVIDER still says local
    respx_mock.post(OPENAI_URL).mock(side_effect=_openai_ok)

    out, _ = _run("reindex_embeddings", "--model", "text-embedding-3-small", "--batch-size", "5")
    assert "Search now uses text-embedding-3-small" in out
    active = ActiveEmbeddingModel.objects.get()
    assert (active.provider, active.model, active.dimensions) == ("openai", "text-embedding-3-small", 1536)
    assert set(MessageEmbedding.objects.values_list("model", flat=True)) == {"text-embedding-3-small"}
    assert set(_per_message()) == {m.id for m in messages} and set(_per_message().values()) == {1}
    assert vector_index.index_exists("text-embedding-3-small")
    assert not vector_index.index_exists("all-MiniLM-L6-v2-int8"), old_index

    response = owner_client.post("/api/search/semantic-search", {"query": "ads", "limit": 3}, format="json")
    assert response.status_code == 200
    assert response.json()["model"] == "text-embedding-3-small"
    assert len(response.json()["results"]) == 3
    stats = owner_client.get("/api/search/embedding-stats").json()
    assert (stats["provider"], stats["model"], stats["coverage"]) == ("openai", "text-embedding-3-small", 1.0)


def test_reindex_moves_the_tenant_indexes_to_the_new_model(
    settings, respx_mock, owner, org, owner_client, messages, local_model
):
    """Large tenants get the new model's own index before the switch, and lose the old one's
    with the old vectors (indexes are per model: vectors of two models are never compared)."""
    settings.SEARCH_EXACT_MAX_ROWS = settings.SEARCH_TENANT_INDEX_MIN_ROWS = 4
    tenant_indexes.forget_cache()
    _run("backfill_embeddings")

    def index_of(model):
        return tenant_indexes.index_name(table=tenant_indexes.MESSAGE_VECTORS, model=model, scope=(org, owner))

    old, new = index_of("all-MiniLM-L6-v2-int8"), index_of("text-embedding-3-small")
    out, _ = _run("tenant_vector_indexes", "--sync")
    assert out.strip() == f"build {old}: {len(messages)} rows: created"
    settings.OPENAI_API_KEY = "sk-test"
    respx_mock.post(OPENAI_URL).mock(side_effect=_openai_ok)

    out, _ = _run("reindex_embeddings", "--model", "text-embedding-3-small", "--batch-size", "5")

    assert f"Tenant index: build {new}: {len(messages)} rows: created" in out
    assert f"Tenant index: drop {old}: model no longer served" in out
    assert list(TenantVectorIndex.objects.values_list("name", "model", "dimensions", "state")) == [
        (new, "text-embedding-3-small", 1536, "ready")
    ]
    listing, _ = _run("tenant_vector_indexes")
    assert new in listing and old not in listing
    plan = selectors.choose_plan(user=owner, organization=org, model="text-embedding-3-small")
    assert plan == "tenant_hnsw"
    response = owner_client.post("/api/search/semantic-search", {"query": "ads", "limit": 3}, format="json")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 3


def test_reindex_stopped_by_an_outage_does_not_switch(settings, respx_mock, owner_client, messages, local_model):
    _run("backfill_embeddings")
    settings.OPENAI_API_KEY = "sk-test"
    settings.PROVIDER_MAX_RETRIES = 0
    respx_mock.post(OPENAI_URL).mock(side_effect=[_openai_ok, OPENAI_DOWN])
    with pytest.raises(CommandError, match="before switching"):
        _run("reindex_embeddings", "--model", "text-embedding-3-small", "--batch-size", "3")
    assert not ActiveEmbeddingModel.objects.exists()
    assert MessageEmbedding.objects.filter(model="all-MiniLM-L6-v2-int8").count() == len(messages)
    response = owner_client.post("/api/search/semantic-search", {"query": "ads"}, format="json")
    assert response.json()["model"] == "all-MiniLM-L6-v2-int8"


def test_reindex_refuses_a_model_it_cannot_place(messages):
    with pytest.raises(CommandError, match="provider"):
        _run("reindex_embeddings", "--model", "mystery-embedder")
