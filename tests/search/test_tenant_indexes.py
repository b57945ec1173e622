"""Partial HNSW indexes per large tenant (search.tenant_indexes) and the plan that uses them
(search.vector_plan): chosen per tenant size, proved with EXPLAIN, built CONCURRENTLY by the
embedding job when a tenant crosses SEARCH_TENANT_INDEX_MIN_ROWS (once, under a cap, with
one winner in a race), dropped with the organization, when the tenant shrinks or when the
model is no longer served, listed in the admin — and search returns k rows either way.

The thresholds are lowered (exact up to 300 vectors, an index above 300) so the tenants
here hold hundreds of synthetic vectors of the active model, not tens of thousands."""

import html
import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from accounts.services import user_create_with_personal_organization
from conversations.models import Message
from raptorflow import jobs
from search import selectors, tenant_indexes
from search.models import MessageEmbedding, TenantVectorIndex
from search.providers import active_spec
from search.tenant_indexes import MESSAGE_VECTORS
from search.vector_index import index_name as shared_index_name
from tests.concurrency import run_together
from tests.conftest import make_client
from tests.search.conftest import make_conversation
from tests.synthetic_vectors import DIMS, SMALL_THRESHOLD, clustered, random_centers

THRESHOLD = SMALL_THRESHOLD
K = 10

pytestmark = pytest.mark.usefixtures("small_vector_thresholds")


@pytest.fixture
def model():
    return active_spec().model


_CENTERS = random_centers(12, seed=15)


def _vectors(count: int, seed: int) -> np.ndarray:
    return clustered(_CENTERS, count, seed=seed)


class Tenant:
    def __init__(self, user, organization, conversation, vectors, message_ids):
        self.user, self.organization, self.conversation = user, organization, conversation
        self.vectors, self.message_ids = vectors, message_ids

    @property
    def scope(self):
        return (self.organization.pk, self.user.pk)

    def true_top_k(self, query: np.ndarray, k: int = K) -> list[uuid.UUID]:
        similarities = self.vectors @ query
        return [self.message_ids[i] for i in np.argsort(-similarities, kind="stable")[:k]]


def _tenant(email: str, rows: int, model: str, seed: int) -> Tenant:
    """A user with `rows` messages embedded with `model` (synthetic vectors, stored through
    the ORM: the embedding job is not what these tests are about)."""
    user = user_create_with_personal_organization(email=email)
    conversation = make_conversation(user)
    vectors = _vectors(rows, seed)
    messages = Message.objects.bulk_create(
        Message(
            conversation=conversation,
            organization_id=conversation.organization_id,
            owner=user,
            role="user",
            content=f"synthetic message {index}",
            sequence=index + 1,
        )
        for index in range(rows)
    )
    MessageEmbedding.objects.bulk_create(
        MessageEmbedding(
            message=message,
            conversation=conversation,
            organization_id=conversation.organization_id,
            owner=user,
            model=model,
            dimensions=DIMS,
            embedding=vector,
            text_sha256="0" * 64,
        )
        for message, vector in zip(messages, vectors, strict=True)
    )
    conversation.message_count = rows
    conversation.save(update_fields=["message_count"])
    return Tenant(user, conversation.organization, conversation, vectors, [m.id for m in messages])


def _analyze():
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE search_messageembedding")


def _build(tenant: Tenant, model: str) -> str:
    return tenant_indexes.unscoped_index_build(table=MESSAGE_VECTORS, model=model, dimensions=DIMS, scope=tenant.scope)


def _index_of(tenant: Tenant, model: str) -> str:
    return tenant_indexes.index_name(table=MESSAGE_VECTORS, model=model, scope=tenant.scope)


def _pg_index(name: str):
    """(is valid) of the index in the database, None when there is none."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s", [name]
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


def _search(tenant: Tenant, query: np.ndarray, model: str, **kwargs):
    return selectors.semantic_search(
        user=tenant.user,
        organization=tenant.organization,
        query_vector=query.tolist(),
        model=model,
        limit=kwargs.pop("limit", K),
        **kwargs,
    )


def _explain_search(tenant: Tenant, query: np.ndarray, model: str) -> str:
    """EXPLAIN of the vector statement semantic_search sent (the last one), under the scan
    settings it set (undone by the rollback)."""
    with CaptureQueriesContext(connection) as captured:
        _search(tenant, query, model)
    # An index plan sends its scan settings, its ranking and their reset in one message.
    statements = [part for q in captured.captured_queries for part in q["sql"].split("; ")]
    with transaction.atomic(), connection.cursor() as cursor:
        for sql in statements:
            if sql.startswith("SELECT set_config('"):
                cursor.execute(sql)
        cursor.execute("EXPLAIN " + [sql for sql in statements if "<=>" in sql][-1])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    return plan


def _recall(found, truth) -> float:
    return len(set(found) & set(truth)) / len(truth)


# --- plan choice, EXPLAIN, completeness (in the test's transaction) ----------------------


@pytest.mark.django_db
def test_the_plan_follows_the_tenants_size_and_index(model):
    small = _tenant("small@synthetic.test", 120, model, seed=1)
    large = _tenant("large@synthetic.test", 700, model, seed=2)

    def plan(tenant, **kwargs):
        return selectors.choose_plan(user=tenant.user, organization=tenant.organization, model=model, **kwargs)

    assert plan(small) == "exact"
    assert plan(large) == "hnsw"  # large, no index of their own yet
    assert _build(large, model) == tenant_indexes.CREATED
    assert plan(large) == "tenant_hnsw"
    assert plan(large, conversation_id=large.conversation.id) == "exact"
    # Vectors of another model are never planned (or searched) with this one's index.
    assert selectors.choose_plan(user=large.user, organization=large.organization, model="other-model") == "exact"
    assert plan(small) == "exact"


@pytest.mark.django_db
def test_the_statement_the_selector_sends_uses_the_tenants_own_index(model):
    _tenant("neighbour@synthetic.test", 900, model, seed=3)
    large = _tenant("large@synthetic.test", 700, model, seed=4)
    assert _build(large, model) == tenant_indexes.CREATED
    _analyze()
    query = _vectors(1, seed=99)[0]

    plan = _explain_search(large, query, model)

    assert _index_of(large, model) in plan, plan
    assert shared_index_name(model) not in plan, plan
    assert "Sort" not in plan.split("Index Scan")[0].split("Limit")[-1], plan


@pytest.mark.django_db
def test_a_large_tenant_gets_k_rows_with_high_recall_with_and_without_its_index(model):
    _tenant("neighbour@synthetic.test", 900, model, seed=5)
    indexed = _tenant("indexed@synthetic.test", 700, model, seed=6)
    unindexed = _tenant("unindexed@synthetic.test", 650, model, seed=7)
    assert _build(indexed, model) == tenant_indexes.CREATED
    _analyze()
    queries = _vectors(8, seed=100)

    for tenant, plan in ((indexed, "tenant_hnsw"), (unindexed, "hnsw")):
        assert selectors.choose_plan(user=tenant.user, organization=tenant.organization, model=model) == plan
        recalls = []
        for query in queries:
            for limit in (K, 50):
                hits = _search(tenant, query, model, limit=limit)
                assert len(hits) == limit, (plan, limit)
                assert [hit.similarity for hit in hits] == sorted((hit.similarity for hit in hits), reverse=True)
                assert {hit.message_id for hit in hits} <= set(tenant.message_ids)
            recalls.append(_recall([hit.message_id for hit in _search(tenant, query, model)], tenant.true_top_k(query)))
        assert np.mean(recalls) >= 0.95, (plan, recalls)


@pytest.mark.django_db
def test_a_shared_index_scan_that_stops_short_falls_back_to_exact_search(settings, model):
    """Without an index of their own, a large tenant's scan of the shared index is capped by
    SEARCH_HNSW_MAX_SCAN_TUPLES; when the cap leaves fewer than k of their rows, the exact
    plan answers instead: never fewer than k rows when k exist."""
    for index in range(3):
        _tenant(f"neighbour{index}@synthetic.test", 900, model, seed=40 + index)
    tenant = _tenant("capped@synthetic.test", 400, model, seed=44)
    _analyze()
    settings.SEARCH_HNSW_EF_SEARCH = 40
    settings.SEARCH_HNSW_MAX_SCAN_TUPLES = 1
    query = _vectors(1, seed=103)[0]

    with CaptureQueriesContext(connection) as captured:
        hits = _search(tenant, query, model, limit=50)

    assert len(hits) == 50
    assert {hit.message_id for hit in hits} == set(tenant.true_top_k(query, k=50))
    # (Leaving out the per-process read of the ready tenant indexes.)
    statements = [q["sql"] for q in captured.captured_queries if "search_tenantvectorindex" not in q["sql"]]
    assert len(statements) == 3, statements  # the count, the capped index scan, the exact fallback
    assert "::vector(384) <=>" in statements[1] and "::vector(384) <=>" not in statements[2]


@pytest.mark.django_db
def test_global_search_through_the_api_returns_k_rows_of_the_callers_own_for_an_indexed_tenant(model):
    _tenant("neighbour@synthetic.test", 900, model, seed=8)
    large = _tenant("large@synthetic.test", 700, model, seed=9)
    assert _build(large, model) == tenant_indexes.CREATED
    client = make_client(large.user, large.organization)

    response = client.get("/api/search/semantic-search/global", {"query": "synthetic message", "limit": 20})

    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 20
    assert {uuid.UUID(row["message_id"]) for row in results} <= set(large.message_ids)


@pytest.mark.django_db
def test_the_build_is_idempotent_and_a_small_tenant_gets_no_index(model):
    small = _tenant("small@synthetic.test", THRESHOLD, model, seed=10)
    large = _tenant("large@synthetic.test", 400, model, seed=11)

    assert _build(small, model) == tenant_indexes.TOO_SMALL
    assert _build(large, model) == tenant_indexes.CREATED
    assert _build(large, model) == tenant_indexes.EXISTS

    assert list(TenantVectorIndex.objects.values_list("name", "state", "rows", "model", "owner_id")) == [
        (_index_of(large, model), "ready", 400, model, large.user.pk)
    ]
    assert _pg_index(_index_of(small, model)) is None
    assert _pg_index(_index_of(large, model)) is True


@pytest.mark.django_db
def test_a_tenant_index_is_built_with_the_configured_graph_density(settings, model):
    """SEARCH_TENANT_INDEX_EF_CONSTRUCTION (200 by default: at ef_construction 64 a
    300k-row tenant of the 1M benchmark could not reach recall 0.95, README "Vector search in
    detail") is the index's own build parameter."""
    settings.SEARCH_TENANT_INDEX_EF_CONSTRUCTION = 128
    large = _tenant("dense@synthetic.test", 400, model, seed=30)

    assert _build(large, model) == tenant_indexes.CREATED

    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [_index_of(large, model)])
        assert set(cursor.fetchone()[0]) == {"m=16", "ef_construction=128"}


@pytest.mark.django_db
def test_reconcile_rebuilds_an_index_built_with_another_graph_density(settings, model):
    settings.SEARCH_TENANT_INDEX_EF_CONSTRUCTION = 64
    large = _tenant("sparse@synthetic.test", 400, model, seed=31)
    assert _build(large, model) == tenant_indexes.CREATED
    settings.SEARCH_TENANT_INDEX_EF_CONSTRUCTION = 128

    done = tenant_indexes.reconcile(model=model, dimensions=DIMS, build_now=True)

    name = _index_of(large, model)
    assert done == [
        f"drop {name}: built with ef_construction 64, not 128 (rebuilt)",
        f"build {name}: 400 rows: created",
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [name])
        assert "ef_construction=128" in cursor.fetchone()[0]
    assert TenantVectorIndex.objects.get(name=name).state == "ready"
    # In line now: nothing more to do.
    assert tenant_indexes.reconcile(model=model, dimensions=DIMS, dry_run=True) == []


@pytest.mark.django_db
def test_no_more_indexes_than_the_cap(settings, model):
    settings.SEARCH_TENANT_INDEX_MAX = 1
    first = _tenant("first@synthetic.test", 400, model, seed=12)
    second = _tenant("second@synthetic.test", 500, model, seed=13)

    assert _build(first, model) == tenant_indexes.CREATED
    assert _build(second, model) == tenant_indexes.CAP_REACHED

    assert TenantVectorIndex.objects.count() == 1
    assert _pg_index(_index_of(second, model)) is None
    assert selectors.choose_plan(user=second.user, organization=second.organization, model=model) == "hnsw"


@pytest.mark.django_db
def test_reconcile_drops_the_index_of_a_tenant_that_shrank_and_of_a_model_no_longer_served(model):
    shrinking = _tenant("shrinking@synthetic.test", 400, model, seed=14)
    steady = _tenant("steady@synthetic.test", 400, model, seed=15)
    assert _build(shrinking, model) == _build(steady, model) == tenant_indexes.CREATED
    # Below half the threshold: its index is not worth keeping.
    MessageEmbedding.objects.filter(message_id__in=shrinking.message_ids[: 400 - THRESHOLD // 2]).delete()

    done = tenant_indexes.reconcile(model=model, dimensions=DIMS, dry_run=True)
    assert done == [f"drop {_index_of(shrinking, model)}: tenant shrank to {THRESHOLD // 2} rows"]
    assert _pg_index(_index_of(shrinking, model)) is True

    tenant_indexes.reconcile(model=model, dimensions=DIMS)
    assert _pg_index(_index_of(shrinking, model)) is None
    assert list(TenantVectorIndex.objects.values_list("name", flat=True)) == [_index_of(steady, model)]
    assert selectors.choose_plan(user=shrinking.user, organization=shrinking.organization, model=model) == "exact"

    # reindex_embeddings switched to another model: this model's tenant indexes go.
    tenant_indexes.reconcile(model="another-model", dimensions=DIMS)
    assert _pg_index(_index_of(steady, model)) is None
    assert not TenantVectorIndex.objects.exists()


@pytest.mark.django_db
def test_reconcile_retries_a_build_its_worker_abandoned(model):
    large = _tenant("large@synthetic.test", 400, model, seed=19)
    name = _index_of(large, model)
    TenantVectorIndex.objects.create(
        name=name,
        table=MESSAGE_VECTORS.db_table,
        model=model,
        dimensions=DIMS,
        organization=large.organization,
        owner=large.user,
    )
    # A build claimed minutes ago may still be running: left alone.
    assert tenant_indexes.reconcile(model=model, dimensions=DIMS, dry_run=True) == []
    TenantVectorIndex.objects.filter(name=name).update(created_at=timezone.now() - timedelta(hours=7))

    done = tenant_indexes.reconcile(model=model, dimensions=DIMS, build_now=True)

    assert done == [f"drop {name}: build abandoned (retried)", f"build {name}: 400 rows: created"]
    assert TenantVectorIndex.objects.get().state == "ready"
    assert _pg_index(name) is True


@pytest.mark.django_db
def test_reconcile_builds_the_missing_indexes_of_large_tenants(model):
    large = _tenant("large@synthetic.test", 400, model, seed=16)
    _tenant("small@synthetic.test", 100, model, seed=17)

    done = tenant_indexes.reconcile(model=model, dimensions=DIMS, build_now=True)

    assert done == [f"build {_index_of(large, model)}: 400 rows: created"]
    assert _pg_index(_index_of(large, model)) is True
    assert selectors.choose_plan(user=large.user, organization=large.organization, model=model) == "tenant_hnsw"


@pytest.mark.django_db
def test_the_admin_lists_the_indexes_with_size_rows_model_and_state(model):
    large = _tenant("large@synthetic.test", 400, model, seed=18)
    assert _build(large, model) == tenant_indexes.CREATED
    operator = User.objects.create_superuser(email="ops@raptorflow.test", password="not-used-1234")
    client = Client()
    client.force_login(operator)

    response = client.get("/admin/search/tenantvectorindex/")

    assert response.status_code == 200
    page = response.content.decode()
    for expected in (_index_of(large, model), "ready", "400", model, html.escape(large.organization.name)):
        assert expected in page
    # A built index has a size on disk (kB or MB, never the "-" of a missing one).
    assert "KB" in page or "MB" in page
    assert client.get("/admin/search/tenantvectorindex/add/").status_code == 403


# --- the background job and deletion (real transactions: CONCURRENTLY) --------------------


@pytest.fixture
def _drop_tenant_indexes_after():
    """Index DDL outlives a transactional test's flush: drop what the test built."""
    yield
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'tenant_hnsw_%%'")
        for (name,) in cursor.fetchall():
            cursor.execute(f"DROP INDEX IF EXISTS {name}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_drop_tenant_indexes_after")
def test_crossing_the_threshold_builds_the_index_concurrently_in_the_background(model, local_model):
    tenant = _tenant("growing@synthetic.test", THRESHOLD, model, seed=20)
    client = make_client(tenant.user, tenant.organization)
    assert not TenantVectorIndex.objects.exists()

    with CaptureQueriesContext(connection) as captured:
        response = client.post(
            f"/api/conversations/{tenant.conversation.id}/messages",
            {"role": "user", "content": "One message more than the threshold"},
            format="json",
        )

    assert response.status_code == 201
    created = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("CREATE INDEX")]
    assert len(created) == 1
    assert created[0].startswith(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {_index_of(tenant, model)} ")
    assert _pg_index(_index_of(tenant, model)) is True
    index = TenantVectorIndex.objects.get()
    assert (index.state, index.rows, index.model, index.owner_id) == ("ready", THRESHOLD + 1, model, tenant.user.pk)
    assert selectors.choose_plan(user=tenant.user, organization=tenant.organization, model=model) == "tenant_hnsw"

    # Another message: the job finds the index there and builds nothing.
    with CaptureQueriesContext(connection) as captured:
        client.post(
            f"/api/conversations/{tenant.conversation.id}/messages",
            {"role": "user", "content": "And one more"},
            format="json",
        )
    assert not [q for q in captured.captured_queries if q["sql"].startswith("CREATE INDEX")]
    assert TenantVectorIndex.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_drop_tenant_indexes_after")
@pytest.mark.parametrize("path", ["queued batch", "backlog sweep"])
def test_the_in_process_worker_builds_the_index_of_a_tenant_it_carries_over_the_threshold(
    path, settings, monkeypatch, model, local_model
):
    """On the embedded default the worker embeds in batches and sweeps its backlog instead of
    running embed_message one by one: either way the tenant it carries over gets its index."""
    settings.BACKGROUND_JOBS_EAGER = False
    worker = jobs.InProcessWorker()
    if path == "backlog sweep":
        # A process whose worker never ran its queue (killed, redeployed): the message waits
        # in the backlog for the next process's worker.
        lost = jobs.InProcessWorker()
        monkeypatch.setattr(lost, "start", lambda: None)
        monkeypatch.setattr(jobs, "_worker", lost)
    else:
        monkeypatch.setattr(jobs, "_worker", worker)
    tenant = _tenant("carried@synthetic.test", THRESHOLD, model, seed=22)
    client = make_client(tenant.user, tenant.organization)

    response = client.post(
        f"/api/conversations/{tenant.conversation.id}/messages",
        {"role": "user", "content": "The message that carries this tenant over"},
        format="json",
    )

    assert response.status_code == 201
    if path == "backlog sweep":
        monkeypatch.setattr(jobs, "_worker", worker)
        assert Client().get("/health").status_code == 200  # the next process's first request
    assert worker.wait_until_idle(timeout=120)
    assert MessageEmbedding.objects.filter(message_id=response.json()["id"], model=model).exists()
    index = TenantVectorIndex.objects.get()
    assert (index.state, index.owner_id) == ("ready", tenant.user.pk)
    assert _pg_index(_index_of(tenant, model)) is True


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_drop_tenant_indexes_after")
def test_two_builds_of_the_same_index_at_once_have_one_winner(model):
    tenant = _tenant("raced@synthetic.test", 500, model, seed=21)

    outcomes = run_together(lambda: _build(tenant, model), lambda: _build(tenant, model))

    assert sorted(outcomes) == [tenant_indexes.CREATED, tenant_indexes.EXISTS]
    assert TenantVectorIndex.objects.filter(state="ready").count() == 1
    assert _pg_index(_index_of(tenant, model)) is True


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_drop_tenant_indexes_after")
def test_the_cap_holds_when_two_tenants_cross_the_threshold_at_once(settings, model):
    settings.SEARCH_TENANT_INDEX_MAX = 1
    first = _tenant("first@synthetic.test", 400, model, seed=22)
    second = _tenant("second@synthetic.test", 450, model, seed=23)

    outcomes = run_together(lambda: _build(first, model), lambda: _build(second, model))

    assert sorted(outcomes) == [tenant_indexes.CAP_REACHED, tenant_indexes.CREATED]
    assert TenantVectorIndex.objects.count() == 1
    assert [_pg_index(_index_of(t, model)) for t in (first, second)].count(True) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_drop_tenant_indexes_after")
def test_deleting_the_organization_drops_its_tenant_indexes(model):
    leaving = _tenant("leaving@synthetic.test", 400, model, seed=24)
    staying = _tenant("staying@synthetic.test", 400, model, seed=25)
    assert _build(leaving, model) == _build(staying, model) == tenant_indexes.CREATED
    organization_id = leaving.organization.pk

    response = make_client(leaving.user, leaving.organization).delete("/api/organizations/current")

    assert response.status_code == 204
    assert _pg_index(_index_of(leaving, model)) is None
    assert not TenantVectorIndex.objects.filter(organization_id=organization_id).exists()
    assert _pg_index(_index_of(staying, model)) is True
    assert selectors.choose_plan(user=staying.user, organization=staying.organization, model=model) == "tenant_hnsw"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_drop_tenant_indexes_after")
def test_a_failed_build_leaves_no_invalid_index_and_search_still_answers(model, monkeypatch):
    tenant = _tenant("failing@synthetic.test", 400, model, seed=26)
    real_create = tenant_indexes.create_index_sql

    def unbuildable(**kwargs):
        # An operator class that does not exist: PostgreSQL refuses the statement.
        return real_create(**kwargs).replace("vector_cosine_ops", "no_such_ops")

    monkeypatch.setattr(tenant_indexes, "create_index_sql", unbuildable)

    assert _build(tenant, model) == tenant_indexes.FAILED

    index = TenantVectorIndex.objects.get()
    assert index.state == "failed" and "no_such_ops" in index.error
    assert _pg_index(index.name) is None
    assert selectors.choose_plan(user=tenant.user, organization=tenant.organization, model=model) == "hnsw"
    assert len(_search(tenant, _vectors(1, seed=101)[0], model)) == K
    # A failed build is retried by reconcile (dropped, then built again).
    monkeypatch.undo()
    done = tenant_indexes.reconcile(model=model, dimensions=DIMS, build_now=True)
    assert done == [f"drop {index.name}: failed build (retried)", f"build {index.name}: 400 rows: created"]
    assert _pg_index(index.name) is True


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_drop_tenant_indexes_after")
def test_a_failing_index_search_leaves_no_scan_setting_behind_on_the_connection(model, monkeypatch):
    tenant = _tenant("broken@synthetic.test", 400, model, seed=27)
    assert _build(tenant, model) == tenant_indexes.CREATED
    real_statement = selectors.search_statement

    def failing(**kwargs):
        sql, params = real_statement(**kwargs)
        return sql.replace("FROM ranked", "FROM no_such_table", 1), params

    monkeypatch.setattr(selectors, "search_statement", failing)

    with pytest.raises(Exception, match="no_such_table"):
        _search(tenant, _vectors(1, seed=102)[0], model)

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_sort'), current_setting('hnsw.iterative_scan')")
        assert cursor.fetchone() == ("on", "off")
