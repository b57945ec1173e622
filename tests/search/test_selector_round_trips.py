"""What one search costs in statements, that folding them changed no result, and that the
active model kept per process follows a switch."""

import io
import json

import httpx
import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pgvector.django import CosineDistance

from search import providers, selectors, services, tenant_indexes
from search.models import ActiveEmbeddingModel, MessageEmbedding
from search.providers import EmbeddingSpec, active_spec
from tests.search.conftest import MARKETING_CORPUS, add_message, make_conversation

# The default local model (the int8 export of all-MiniLM-L6-v2).
MODEL = providers.local.MODEL_NAME
DIMS = 384


def _unit(rng, count):
    vectors = rng.standard_normal((count, DIMS))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def vectors(owner, org, outsider):
    """30 messages of the owner over two conversations, and the outsider's, with random vectors."""
    rng = np.random.default_rng(3)
    conversations = [make_conversation(owner, org, title=f"C{i}") for i in range(2)]
    theirs = make_conversation(outsider)
    rows = []
    for index, vector in enumerate(_unit(rng, 36)):
        conversation = theirs if index >= 30 else conversations[index % 2]
        message = add_message(conversation, f"message {index}")
        rows.append(
            MessageEmbedding(
                message=message,
                conversation=conversation,
                organization_id=conversation.organization_id,
                owner_id=conversation.owner_id,
                model=MODEL,
                dimensions=DIMS,
                embedding=vector.tolist(),
                text_sha256="0" * 64,
            )
        )
    MessageEmbedding.objects.bulk_create(rows)
    # The ready tenant indexes are read once per process and period
    # (SEARCH_TENANT_INDEX_CACHE_SECONDS), not per search: read them now.
    tenant_indexes.forget_cache()
    tenant_indexes.is_ready(table=tenant_indexes.MESSAGE_VECTORS, model=MODEL, scope=(org, owner))
    return {"conversations": conversations, "messages": [row.message for row in rows[:30]], "rng": rng}


def _reference(*, owner, org, query, limit, conversation_id=None, exclude=()):
    """The exact ranking as the ORM states it, message by message."""
    queryset = MessageEmbedding.objects.filter(organization=org, owner=owner, model=MODEL).exclude(
        message_id__in=list(exclude)
    )
    if conversation_id is not None:
        queryset = queryset.filter(conversation_id=conversation_id)
    rows = queryset.annotate(distance=CosineDistance("embedding", query)).order_by("distance", "message_id")[:limit]
    return [(row.message_id, max(0.0, 1.0 - row.distance), row.message.content) for row in rows]


def _search(owner, org, query, **kwargs):
    return selectors.semantic_search(user=owner, organization=org, query_vector=query, model=MODEL, **kwargs)


def _statements(call):
    with CaptureQueriesContext(connection) as captured:
        result = call()
    return result, [entry["sql"] for entry in captured.captured_queries]


pytestmark = pytest.mark.django_db


def test_a_search_of_a_caller_with_few_vectors_is_one_statement(owner, org, vectors):
    """The plan decision (a count stopping at SEARCH_EXACT_MAX_ROWS + 1), the exact ranking
    and the winners' messages are one statement."""
    query = _unit(vectors["rng"], 1)[0].tolist()
    hits, statements = _statements(lambda: _search(owner, org, query, limit=5))
    assert len(hits) == 5
    assert len(statements) == 1, statements
    assert "count(*)" in statements[0] and "conversations_message" in statements[0]


@pytest.mark.parametrize("kwargs", [{"plan": "exact"}, {"conversation": True}])
def test_an_exact_search_decided_beforehand_is_one_statement(owner, org, vectors, kwargs):
    query = _unit(vectors["rng"], 1)[0].tolist()
    if kwargs.pop("conversation", False):
        kwargs["conversation_id"] = vectors["conversations"][0].id
    _, statements = _statements(lambda: _search(owner, org, query, limit=5, **kwargs))
    assert len(statements) == 1, statements
    assert "count(*)" not in statements[0]


def test_a_caller_with_many_vectors_costs_two_round_trips_and_no_transaction(settings, owner, org, vectors):
    """Above SEARCH_EXACT_MAX_ROWS: the gated statement (its count says HNSW, its exact scan
    does not run), then one message holding set_config of the HNSW scan settings, the HNSW
    ranking with the messages, and the settings' reset. No savepoint, no SET LOCAL, no
    separate message read."""
    settings.SEARCH_EXACT_MAX_ROWS = 10
    query = _unit(vectors["rng"], 1)[0].tolist()
    hits, statements = _statements(lambda: _search(owner, org, query, limit=5))
    assert len(statements) == 2, statements
    assert "count(*)" in statements[0]
    scan_settings, ranking, reset = statements[1].split("; ")
    assert scan_settings.startswith("SELECT set_config('hnsw.ef_search'")
    assert "::vector(384) <=>" in ranking
    assert "reset_val" in reset
    with connection.cursor() as cursor:
        cursor.execute("SHOW enable_sort")
        assert cursor.fetchone()[0] == "on"
    expected = _reference(owner=owner, org=org, query=query, limit=5)
    assert [hit.message_id for hit in hits] == [row[0] for row in expected]


def test_a_caller_with_their_own_index_costs_one_round_trip_and_no_count(settings, owner, org, vectors):
    """A ready tenant index is known without a query (the per-process cache): one message
    with the scan settings, the ranking through the index with the messages, the reset."""
    settings.SEARCH_EXACT_MAX_ROWS = settings.SEARCH_TENANT_INDEX_MIN_ROWS = 10
    settings.SEARCH_TENANT_INDEX_EF_SEARCH = 100
    outcome = tenant_indexes.unscoped_index_build(
        table=tenant_indexes.MESSAGE_VECTORS, model=MODEL, dimensions=DIMS, scope=(org, owner)
    )
    assert outcome == tenant_indexes.CREATED
    query = _unit(vectors["rng"], 1)[0].tolist()
    _statements(lambda: _search(owner, org, query, limit=5))  # the cache, dropped by the build, is read again

    hits, statements = _statements(lambda: _search(owner, org, query, limit=5))

    assert len(statements) == 1, statements
    scan_settings, ranking, reset = statements[0].split("; ")
    assert scan_settings.startswith("SELECT set_config('hnsw.ef_search', '100'")
    assert "::vector(384) <=>" in ranking and "count(*)" not in ranking
    assert "reset_val" in reset
    expected = _reference(owner=owner, org=org, query=query, limit=5)
    assert [hit.message_id for hit in hits] == [row[0] for row in expected]


def test_the_ready_tenant_indexes_are_read_once_per_period_not_per_search(settings, owner, org, vectors):
    settings.SEARCH_TENANT_INDEX_CACHE_SECONDS = 60
    tenant_indexes.forget_cache()
    query = _unit(vectors["rng"], 1)[0].tolist()

    _, statements = _statements(lambda: [_search(owner, org, query, limit=5) for _ in range(5)])

    assert len([sql for sql in statements if "search_tenantvectorindex" in sql]) == 1
    assert len(statements) == 1 + 5


@pytest.mark.parametrize("plan", [None, "exact", "hnsw", "tenant_hnsw"])
def test_results_match_the_exact_reference(owner, org, vectors, plan):
    """Same order, same similarities, same content, only the caller's rows; exclusions and
    min_similarity as before (30 rows: HNSW with iterative scans finds them all)."""
    rng = vectors["rng"]
    messages = vectors["messages"]
    for query in _unit(rng, 3).tolist():
        expected = _reference(owner=owner, org=org, query=query, limit=7)
        hits = _search(owner, org, query, limit=7, plan=plan)
        assert [(hit.message_id, hit.content) for hit in hits] == [(row[0], row[2]) for row in expected]
        assert [hit.similarity for hit in hits] == pytest.approx([row[1] for row in expected], abs=1e-6)

        exclude = [messages[0].id, messages[5].id, hits[0].message_id]
        expected = _reference(owner=owner, org=org, query=query, limit=7, exclude=exclude)
        hits = _search(owner, org, query, limit=7, plan=plan, exclude_message_ids=exclude)
        assert [hit.message_id for hit in hits] == [row[0] for row in expected]

        floor = expected[3][1]
        hits = _search(owner, org, query, limit=7, plan=plan, exclude_message_ids=exclude, min_similarity=floor)
        assert [hit.message_id for hit in hits] == [row[0] for row in expected[:4]]


def test_conversation_scope_matches_the_exact_reference(owner, org, vectors):
    conversation = vectors["conversations"][1]
    for query in _unit(vectors["rng"], 3).tolist():
        expected = _reference(owner=owner, org=org, query=query, limit=4, conversation_id=conversation.id)
        hits = _search(owner, org, query, limit=4, conversation_id=str(conversation.id))
        assert [hit.message_id for hit in hits] == [row[0] for row in expected]
        assert {hit.conversation_id for hit in hits} == {conversation.id}


def test_vectors_of_another_model_are_never_searched(owner, org, vectors):
    query = _unit(vectors["rng"], 1)[0].tolist()
    assert selectors.semantic_search(user=owner, organization=org, query_vector=query, model="other", limit=5) == []


def test_the_statement_is_compiled_once_per_shape(owner, org, outsider, vectors):
    selectors._statement_template.cache_clear()
    query = _unit(vectors["rng"], 1)[0].tolist()
    _search(owner, org, query, limit=5)
    _search(outsider, outsider.default_organization, query, limit=5)
    _search(owner, org, query, limit=5, exclude_message_ids=[vectors["messages"][0].id])
    info = selectors._statement_template.cache_info()
    assert (info.misses, info.hits) == (2, 1)


# --- the active model, kept per process ------------------------------------------------


@pytest.fixture
def fresh_active_spec():
    providers.forget_active_spec()
    yield
    providers.forget_active_spec()


@pytest.mark.django_db(transaction=True)
def test_the_active_model_is_read_once_then_kept(fresh_active_spec):
    spec, statements = _statements(active_spec)
    assert spec.model == MODEL and len(statements) == 1
    again, statements = _statements(active_spec)
    assert again == spec and statements == []


@pytest.mark.django_db(transaction=True)
def test_a_switch_in_this_process_is_seen_at_once(fresh_active_spec):
    assert active_spec().model == MODEL
    new = EmbeddingSpec(provider="openai", model="text-embedding-3-small", dimensions=1536)
    services.active_model_switch(spec=new)
    assert active_spec() == new
    ActiveEmbeddingModel.objects.all().delete()
    assert active_spec().model == MODEL


@pytest.mark.django_db(transaction=True)
def test_a_switch_by_another_process_is_seen_once_the_kept_model_expires(monkeypatch, fresh_active_spec):
    assert active_spec().model == MODEL
    # What another process's write looks like here: no signal in this one.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO search_activeembeddingmodel (id, provider, model, dimensions, switched_at) "
            "VALUES (1, 'openai', 'text-embedding-3-small', 1536, now())"
        )
    assert active_spec().model == MODEL
    now = providers.time.monotonic()
    monkeypatch.setattr(providers.time, "monotonic", lambda: now + providers.ACTIVE_SPEC_TTL_SECONDS + 1)
    assert active_spec().model == "text-embedding-3-small"


def test_changed_embedding_settings_are_seen_at_once(settings, fresh_active_spec):
    assert active_spec().model == MODEL
    settings.EMBEDDING_PROVIDER = "openai"
    assert active_spec().model == "text-embedding-3-small"


def test_a_model_read_inside_a_transaction_is_not_kept(fresh_active_spec):
    """A test runs in a transaction: the switch it makes rolls back, so nothing read in it is kept."""
    services.active_model_switch(spec=EmbeddingSpec(provider="openai", model="text-embedding-3-small", dimensions=1536))
    assert active_spec().model == "text-embedding-3-small"
    assert providers._active is None


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


@pytest.mark.django_db(transaction=True)
def test_search_follows_a_reindex_to_another_model(
    settings, respx_mock, owner, org, owner_client, local_model, fresh_active_spec
):
    conversation = make_conversation(owner, org)
    for text in MARKETING_CORPUS:
        add_message(conversation, text)
    call_command("backfill_embeddings", stdout=io.StringIO(), stderr=io.StringIO())
    first = owner_client.post("/api/search/semantic-search", {"query": "ads", "limit": 3}, format="json")
    assert first.json()["model"] == MODEL
    assert providers._active is not None  # kept from the request

    settings.OPENAI_API_KEY = "sk-test"
    respx_mock.post("https://api.openai.com/v1/embeddings").mock(side_effect=_openai_ok)
    call_command("reindex_embeddings", "--model", "text-embedding-3-small", stdout=io.StringIO(), stderr=io.StringIO())

    response = owner_client.post("/api/search/semantic-search", {"query": "ads", "limit": 3}, format="json")
    assert response.status_code == 200
    assert response.json()["model"] == "text-embedding-3-small"
    assert len(response.json()["results"]) == 3
