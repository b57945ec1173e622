"""Partial HNSW indexes per large tenant, for any embedded table (search.vector_plan).

    is_ready(*, table, model, scope) -> bool             cached per process; used by the planner
    index_if_grown(*, table, model, dimensions, scope)   schedules a build once a tenant is large
    unscoped_index_build(*, table, model, dimensions, scope) -> outcome   the build job's work
    unscoped_index_drop(index)                           DROP INDEX CONCURRENTLY + the row
    drop_for_organization(organization)                  organization_deleting hook receiver
    reconcile(*, dry_run=False) -> list[str]             builds what is missing, drops what is no longer wanted

A tenant (the values of a table's scope columns: organization and owner for message
vectors) whose vectors of one model exceed SEARCH_TENANT_INDEX_MIN_ROWS gets an HNSW index
of its own, partial on `model = '<model>' AND <scope column> = '<value>' ...` — exactly the
filter the search statement applies, so PostgreSQL proves the predicate from the query and
picks this small index over the model's shared one: no filter loss, no iterative scan to
run long, recall from a modest ef_search (README "Vector search in detail").

Why a registry row (search.models.TenantVectorIndex) and not just pg_indexes: the row is
claimed under an advisory lock before the slow CONCURRENTLY build starts, so two jobs never
build the same index and at most SEARCH_TENANT_INDEX_MAX exist; its state says whether the
planner may count on it (a CONCURRENTLY build is invisible until done, and leaves an
INVALID index when it fails); the admin lists it with its size.

Indexes are per model: vectors of different models are never compared, and after
`reindex_embeddings` switches models, reconcile() builds the new model's indexes and drops
the old ones'. An index goes when its organization is deleted (hook), when its tenant
shrinks below half the threshold, or when its model is no longer served (reconcile).
"""

import hashlib
import logging
import threading
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from raptorflow import jobs, metrics
from search import vector_plan
from search.models import HNSW_MAX_DIMENSIONS, MessageEmbedding, TenantVectorIndex
from search.vector_index import HNSW_M, validate_model_name
from search.vector_plan import VectorTable, order_sql

logger = logging.getLogger(__name__)

PREFIX = "tenant_hnsw_"

CREATED = "created"
EXISTS = "exists"
CAP_REACHED = "cap_reached"
TOO_SMALL = "too_small"
FAILED = "failed"

# A build still `building` after this long was abandoned by its worker.
ABANDONED_AFTER = timedelta(hours=6)

# Serializes build claims (the cap is a count); any constant unlikely to clash.
_CLAIM_LOCK = 0x7E4A_11D3

_tables: dict[str, VectorTable] = {}


def register_table(table: VectorTable) -> VectorTable:
    """Makes `table`'s tenant indexes buildable by name (jobs carry the table's name)."""
    _tables[table.db_table] = table
    return table


def table_named(db_table: str) -> VectorTable:
    return _tables[db_table]


MESSAGE_VECTORS = register_table(vector_plan.MESSAGE_VECTORS)


# --- names and DDL -------------------------------------------------------------------------


def _scope_values(scope) -> tuple[str, ...]:
    """Scope values (instances, UUIDs or their text) as the text of their UUIDs."""
    return tuple(str(uuid.UUID(str(getattr(value, "pk", value)))) for value in scope)


def index_name(*, table: VectorTable, model: str, scope) -> str:
    key = "|".join((table.db_table, model, *_scope_values(scope)))
    return PREFIX + hashlib.sha256(key.encode()).hexdigest()[:24]


def create_index_sql(*, table: VectorTable, model: str, dimensions: int, scope, concurrently: bool) -> str:
    """DDL takes no bind parameters: the model name passes validate_model_name() and every
    scope value is re-printed from a parsed UUID."""
    validate_model_name(model)
    if not 1 <= int(dimensions) <= HNSW_MAX_DIMENSIONS:
        raise ValueError(f"An HNSW index takes 1..{HNSW_MAX_DIMENSIONS} dimensions, not {dimensions}")
    values = _scope_values(scope)
    if len(values) != len(table.scope_columns):
        raise ValueError(f"{table.db_table} is scoped by {table.scope_columns}, not {len(values)} values")
    quote = connection.ops.quote_name
    predicate = " AND ".join(
        [f"{quote(table.model_column)} = '{model}'"]
        + [f"{quote(column)} = '{value}'::uuid" for column, value in zip(table.scope_columns, values, strict=True)]
    )
    return (
        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS "
        f"{index_name(table=table, model=model, scope=scope)} ON {quote(table.db_table)} "
        f"USING hnsw ({order_sql(table, dimensions)} vector_cosine_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {int(settings.SEARCH_TENANT_INDEX_EF_CONSTRUCTION)}) "
        f"WHERE {predicate}"
    )


def _drop_index_sql(name: str) -> str:
    if not name.startswith(PREFIX) or not name[len(PREFIX) :].isalnum():
        raise ValueError(f"Not a tenant vector index: {name!r}")
    return f"DROP INDEX {'' if connection.in_atomic_block else 'CONCURRENTLY '}IF EXISTS {name}"


# --- which indexes are ready (cached) -------------------------------------------------------

_cache_lock = threading.Lock()
_cache: dict = {"expires": 0.0, "keys": frozenset()}


def _key(table_name: str, model: str, scope) -> tuple:
    return (table_name, model, *_scope_values(scope))


def _ready_keys() -> frozenset:
    now = time.monotonic()
    if _cache["expires"] > now:
        return _cache["keys"]
    with _cache_lock:
        if _cache["expires"] <= now:
            rows = TenantVectorIndex.objects.filter(state=TenantVectorIndex.State.READY).values_list(
                "table", "model", "organization_id", "owner_id"
            )
            keys = frozenset(
                _key(table_name, model, [v for v in (org, owner) if v is not None])
                for table_name, model, org, owner in rows
            )
            _cache.update(keys=keys, expires=now + settings.SEARCH_TENANT_INDEX_CACHE_SECONDS)
    return _cache["keys"]


def forget_cache() -> None:
    """The next is_ready() reads the registry again (called after every change made here;
    other processes see it within SEARCH_TENANT_INDEX_CACHE_SECONDS, and meanwhile their
    searches still answer: search.vector_plan)."""
    _cache["expires"] = 0.0


def is_ready(*, table: VectorTable, model: str, scope) -> bool:
    if settings.SEARCH_TENANT_INDEX_MAX <= 0:
        return False
    return _key(table.db_table, model, scope) in _ready_keys()


# --- how many rows a tenant holds ---------------------------------------------------------


def held_rows(*, table: VectorTable, model: str, scope, at_most: int | None = None) -> int:
    """The tenant's vectors of `model`, counting stops past `at_most` (a huge tenant costs
    no more than the threshold)."""
    quote = connection.ops.quote_name
    where = " AND ".join(
        [f"{quote(table.model_column)} = %s"] + [f"{quote(column)} = %s" for column in table.scope_columns]
    )
    limit = "" if at_most is None else f" LIMIT {int(at_most) + 1}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {quote(table.db_table)} WHERE {where}{limit}) held",  # noqa: S608
            [model, *(uuid.UUID(value) for value in _scope_values(scope))],
        )
        return cursor.fetchone()[0]


# --- building ------------------------------------------------------------------------------


def index_if_grown(*, table: VectorTable, model: str, dimensions: int, scope) -> bool:
    """Schedules the tenant's index build (after the current transaction commits) when they
    hold more than SEARCH_TENANT_INDEX_MIN_ROWS vectors of `model` and have no index of it
    yet, built or claimed. Cheap for the tenants that need nothing: a capped count."""
    if settings.SEARCH_TENANT_INDEX_MAX <= 0:
        return False
    name = index_name(table=table, model=model, scope=scope)
    if TenantVectorIndex.objects.filter(name=name).exists():
        return False
    threshold = settings.SEARCH_TENANT_INDEX_MIN_ROWS
    if held_rows(table=table, model=model, scope=scope, at_most=threshold) <= threshold:
        return False
    from search.tasks import build_tenant_vector_index

    jobs.run_after_commit(build_tenant_vector_index, table.db_table, model, int(dimensions), *_scope_values(scope))
    return True


def index_owners_if_grown(*, message_ids, model: str, dimensions: int) -> None:
    """index_if_grown for each owner of these just-embedded messages, once each: every path
    that embeds messages (the job, the in-process worker's batches and backlog sweep) ends
    here, so a tenant crossing the threshold gets its index whichever path carried it over."""
    scopes = (
        MessageEmbedding.objects.filter(message_id__in=list(message_ids), model=model)
        .values_list("organization_id", "owner_id")
        .distinct()
    )
    for scope in scopes:
        index_if_grown(table=MESSAGE_VECTORS, model=model, dimensions=dimensions, scope=scope)


def _claim(*, table: VectorTable, model: str, dimensions: int, scope, name: str) -> str | None:
    """Records the build about to start; None when this call won, else why not. Claims are
    serialized by a transaction-level advisory lock so the cap is a true cap."""
    values = _scope_values(scope)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CLAIM_LOCK])
        if TenantVectorIndex.objects.filter(name=name).exists():
            return EXISTS
        if TenantVectorIndex.objects.exclude(state=TenantVectorIndex.State.FAILED).count() >= (
            settings.SEARCH_TENANT_INDEX_MAX
        ):
            return CAP_REACHED
        TenantVectorIndex.objects.create(
            name=name,
            table=table.db_table,
            model=model,
            dimensions=dimensions,
            organization_id=values[0],
            owner_id=values[1] if len(values) > 1 else None,
        )
    return None


def unscoped_index_build(*, table: VectorTable, model: str, dimensions: int, scope) -> str:
    """The build job: claims the tenant's index and builds it CONCURRENTLY (the table keeps
    taking writes and searches meanwhile). Idempotent: an index built, building or failed
    is left as it is (reconcile() retries failures)."""
    name = index_name(table=table, model=model, scope=scope)
    threshold = settings.SEARCH_TENANT_INDEX_MIN_ROWS
    if TenantVectorIndex.objects.filter(name=name).exists():
        return EXISTS
    held = held_rows(table=table, model=model, scope=scope)
    if held <= threshold:
        return TOO_SMALL
    refused = _claim(table=table, model=model, dimensions=dimensions, scope=scope, name=name)
    if refused:
        if refused == CAP_REACHED:
            logger.warning(
                "Not building %s: SEARCH_TENANT_INDEX_MAX (%d) reached", name, settings.SEARCH_TENANT_INDEX_MAX
            )
        return refused
    sql = create_index_sql(
        table=table, model=model, dimensions=dimensions, scope=scope, concurrently=not connection.in_atomic_block
    )
    try:
        _run_ddl(sql, memory_mb=settings.SEARCH_TENANT_INDEX_BUILD_MEMORY_MB)
    except DatabaseError as exc:
        # A failed CONCURRENTLY build leaves an INVALID index behind: never keep it.
        logger.exception("Building the tenant vector index %s failed", name)
        _run_ddl(_drop_index_sql(name))
        TenantVectorIndex.objects.filter(name=name).update(state=TenantVectorIndex.State.FAILED, error=str(exc)[:2000])
        return FAILED
    TenantVectorIndex.objects.filter(name=name).update(
        state=TenantVectorIndex.State.READY, rows=held, ready_at=timezone.now(), error=""
    )
    forget_cache()
    return CREATED


def _run_ddl(sql: str, *, memory_mb: int | None = None) -> None:
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            # Inside a transaction that already wrote rows, PostgreSQL refuses index DDL while
            # deferred foreign-key checks are pending (Django's are DEFERRABLE INITIALLY DEFERRED).
            # A savepoint, so that a failed build leaves the transaction usable.
            with transaction.atomic():
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute(sql)
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            return
        if memory_mb:
            # An HNSW build far slower once its graph outgrows maintenance_work_mem.
            cursor.execute("SELECT set_config('maintenance_work_mem', %s, false)", [f"{int(memory_mb)}MB"])
        try:
            cursor.execute(sql)
        finally:
            if memory_mb:
                cursor.execute("RESET maintenance_work_mem")


# --- dropping ------------------------------------------------------------------------------


def unscoped_index_drop(index: TenantVectorIndex) -> None:
    """Drops the index (CONCURRENTLY outside a transaction), then its row."""
    # First the row's state, so no process plans on an index that is going away.
    TenantVectorIndex.objects.filter(pk=index.pk).update(state=TenantVectorIndex.State.BUILDING)
    forget_cache()
    _run_ddl(_drop_index_sql(index.name))
    TenantVectorIndex.objects.filter(pk=index.pk).delete()
    forget_cache()


def drop_for_organization(organization) -> None:
    """organization_deleting receiver: the organization's indexes go before its rows (so the
    deletion does not maintain them row by row). Inside a transaction, after it commits.
    Should a later receiver (billing) block the deletion, the organization lost only
    speed: the next embedding job or reconcile() builds its indexes again."""
    if connection.in_atomic_block:
        from search.tasks import drop_tenant_vector_indexes

        jobs.run_after_commit(drop_tenant_vector_indexes, str(organization.pk))
        return
    unscoped_organization_indexes_drop(organization_id=organization.pk)


def unscoped_organization_indexes_drop(*, organization_id) -> int:
    indexes = list(TenantVectorIndex.objects.filter(organization_id=organization_id))
    for index in indexes:
        unscoped_index_drop(index)
    return len(indexes)


# --- reconcile -----------------------------------------------------------------------------


def _orphan_index_names() -> list[str]:
    """Tenant indexes in the database without a registry row (their organization or owner
    was deleted without the hook, or a build crashed before its row was written)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE %s", [PREFIX + "%"])
        present = {row[0] for row in cursor.fetchall()}
    return sorted(present - set(TenantVectorIndex.objects.values_list("name", flat=True)))


def _ef_construction(name: str) -> int | None:
    """The ef_construction an index was built with (pgvector's default, 64, when unset)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [name])
        row = cursor.fetchone()
    if row is None:
        return None
    options = dict(option.split("=", 1) for option in row[0] or ())
    return int(options.get("ef_construction", 64))


def _large_tenants(table: VectorTable, model: str) -> list[tuple]:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column) for column in table.scope_columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns}, count(*) FROM {quote(table.db_table)} WHERE {quote(table.model_column)} = %s "  # noqa: S608
            f"GROUP BY {columns} HAVING count(*) > %s ORDER BY count(*) DESC",
            [model, settings.SEARCH_TENANT_INDEX_MIN_ROWS],
        )
        return cursor.fetchall()


def reconcile(*, model: str, dimensions: int, dry_run: bool = False, build_now: bool = False) -> list[str]:
    """Brings the indexes in line with the data for the served `model`: drops those of other
    models, of tenants shrunk below half the threshold, failed ones, orphans and those built
    with another SEARCH_TENANT_INDEX_EF_CONSTRUCTION (then built again); schedules
    the builds of large tenants without one, largest first (up to the cap), or runs them
    here with `build_now` (a management command, whose process may end before a worker
    thread would). Returns what it did (or would do), one line each."""
    done: list[str] = []
    for name in _orphan_index_names():
        done.append(f"drop orphan {name}")
        if not dry_run:
            _run_ddl(_drop_index_sql(name))
    floor = settings.SEARCH_TENANT_INDEX_MIN_ROWS // 2
    abandoned_before = timezone.now() - ABANDONED_AFTER
    for index in TenantVectorIndex.objects.order_by("pk"):
        table = _tables.get(index.table)
        scope = [v for v in (index.organization_id, index.owner_id) if v is not None]
        reason = None
        if table is None or index.model != model:
            reason = "model no longer served" if table else "unknown table"
        elif index.state == TenantVectorIndex.State.FAILED:
            reason = "failed build (retried)"
        elif index.state == TenantVectorIndex.State.BUILDING and index.created_at < abandoned_before:
            # Its worker died mid-build (a live CONCURRENTLY build of the largest tenant takes
            # minutes, not hours): what it left is dropped and the build claimed again.
            reason = "build abandoned (retried)"
        elif index.state == TenantVectorIndex.State.READY:
            held = held_rows(table=table, model=index.model, scope=scope, at_most=floor)
            wanted = int(settings.SEARCH_TENANT_INDEX_EF_CONSTRUCTION)
            if held <= floor:
                reason = f"tenant shrank to {held} rows"
            elif (built := _ef_construction(index.name)) not in (None, wanted):
                # Built before SEARCH_TENANT_INDEX_EF_CONSTRUCTION changed: a sparser graph
                # caps its recall. Meanwhile the tenant is served by the shared index.
                reason = f"built with ef_construction {built}, not {wanted} (rebuilt)"
        if reason:
            done.append(f"drop {index.name}: {reason}")
            if not dry_run:
                unscoped_index_drop(index)
    done += build_missing(model=model, dimensions=dimensions, dry_run=dry_run, build_now=build_now)
    if not dry_run:
        metrics.count_background_job(task="reconcile_tenant_vector_indexes", outcome="done")
    return done


def build_missing(*, model: str, dimensions: int, dry_run: bool = False, build_now: bool = False) -> list[str]:
    """The builds of every tenant above the threshold without an index of `model`, largest
    first (up to the cap): scheduled, or run here with `build_now`. reindex_embeddings runs
    it for the new model before switching, so large tenants are fast from the first search."""
    done: list[str] = []
    if settings.SEARCH_TENANT_INDEX_MAX <= 0:
        return done
    from search.tasks import build_tenant_vector_index

    for table in _tables.values():
        for *scope, held in _large_tenants(table, model):
            name = index_name(table=table, model=model, scope=scope)
            if TenantVectorIndex.objects.filter(name=name).exists():
                continue
            if dry_run:
                done.append(f"build {name}: {held} rows")
            elif build_now:
                outcome = unscoped_index_build(table=table, model=model, dimensions=dimensions, scope=scope)
                done.append(f"build {name}: {held} rows: {outcome}")
            else:
                done.append(f"build {name}: {held} rows: scheduled")
                jobs.run_after_commit(
                    build_tenant_vector_index, table.db_table, model, int(dimensions), *_scope_values(scope)
                )
    return done
