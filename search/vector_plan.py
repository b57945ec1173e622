"""How a top-k vector search is planned, for any table of embeddings: the one place that
decides, so message vectors (search.selectors) and document chunks plan alike.

    VectorTable(db_table, scope_columns)      an embedded table and the columns that scope it
    plan_before(*, table, model, scope, narrowed=False, limit) -> VectorPlan | None
        the plan known before touching the rows: exact when the caller narrowed the search
        to a handful of rows (one conversation, named ids), the caller's own index when one
        is ready (search.tenant_indexes), else None: decided by counting (plan_after_count)
    plan_after_count(held, *, limit) -> VectorPlan
        exact while the caller holds at most SEARCH_EXACT_MAX_ROWS vectors of the model,
        the model's shared HNSW index with iterative scans above
    order_expression(dimensions)              the ORM expression both index plans order by
    fetch_with_scan_settings(cursor, plan, sql, params)   an index plan's statement, in one round trip

Why the plan is chosen here rather than by PostgreSQL (SPEC §7, README "Vector search in
detail"): left alone, the planner filters an HNSW scan's ef_search nearest rows of the whole
table down to the caller's, and a mid-sized tenant silently gets fewer than k rows. So:
- exact (`ORDER BY embedding <=> q`, which no index matches) over the caller's rows while
  they are few: complete, and fast through the b-tree on the scope columns and model;
- the caller's own partial HNSW index once they are large (its predicate is the search's
  own filter — model and scope columns — so every row it yields is theirs: no filter loss,
  no long iterative scan);
- the model's shared partial HNSW index with iterative scans for a large caller without
  an index of their own yet (building, or over SEARCH_TENANT_INDEX_MAX): the scan goes on
  until enough of the caller's rows are found, capped by SEARCH_HNSW_MAX_SCAN_TUPLES.
Both index plans order by `embedding::vector(<dims>) <=> q` (the indexes' expression) and
run under the same iterative settings, so if a tenant index is dropped between the cache's
refreshes the statement still answers, from the shared index. Index plans fetch a few more
rows than asked (relaxed_order may return them slightly out of order); the caller re-sorts
them by exact distance.

Another embedded table reuses it by describing itself once (documents.search_plan:
`tenant_indexes.register_table(VectorTable("documents_chunkembedding", ("organization_id",),
index_prefix="chunk_hnsw"))`), then, in its selector: plan_before(); when None, a statement
that counts the caller's rows (up to SEARCH_EXACT_MAX_ROWS + 1) and ranks them exactly when
plan_after_count() says so; otherwise its ranking ordered by order_expression() through
fetch_with_scan_settings(), re-sorted by exact distance. After storing vectors it calls
tenant_indexes.index_if_grown() so its large tenants get their own index (the registry, the
cap, the admin and the drop on organization deletion are shared); its per-model shared
indexes come from search.vector_index with the table.
"""

from dataclasses import dataclass

from django.conf import settings
from django.db.models.functions import Cast
from pgvector.django import VectorField

PLAN_EXACT = "exact"
PLAN_HNSW = "hnsw"
PLAN_TENANT_HNSW = "tenant_hnsw"
PLANS = (PLAN_EXACT, PLAN_HNSW, PLAN_TENANT_HNSW)


@dataclass(frozen=True)
class VectorTable:
    """A table of embeddings: one vector column (untyped `vector`, dimensions per model), a
    model column, and the columns a caller's rows are filtered on, in the order their
    values are given (e.g. organization_id, owner_id)."""

    db_table: str
    scope_columns: tuple[str, ...]
    # The per-model shared indexes are named `<index_prefix>_<model slug>_<digest>`
    # (search.vector_index).
    index_prefix: str = "embedding_hnsw"
    vector_column: str = "embedding"
    model_column: str = "model"


# Message vectors are private to their owner: scoped by organization and owner. (The chunk
# vectors describe themselves in documents.search_plan.)
MESSAGE_VECTORS = VectorTable("search_messageembedding", ("organization_id", "owner_id"))


@dataclass(frozen=True)
class VectorPlan:
    name: str
    # HNSW scan width and the iterative scan's cap; unused by the exact plan.
    ef_search: int = 0
    max_scan_tuples: int = 0

    @property
    def uses_index(self) -> bool:
        return self.name != PLAN_EXACT

    def candidates(self, limit: int) -> int:
        """Rows the ranking fetches: a few more than asked from an index (they are re-sorted
        by exact distance), exactly `limit` when exact."""
        return max(limit * 2, 40) if self.uses_index else limit


EXACT = VectorPlan(PLAN_EXACT)


def hnsw_plan(limit: int) -> VectorPlan:
    return VectorPlan(
        PLAN_HNSW,
        ef_search=max(settings.SEARCH_HNSW_EF_SEARCH, limit * 2, 40),
        max_scan_tuples=settings.SEARCH_HNSW_MAX_SCAN_TUPLES,
    )


def tenant_hnsw_plan(limit: int) -> VectorPlan:
    # The cap only matters if the tenant index vanished under us (then the shared index
    # serves the statement): every row of the tenant's own index passes the filter.
    return VectorPlan(
        PLAN_TENANT_HNSW,
        ef_search=max(settings.SEARCH_TENANT_INDEX_EF_SEARCH, limit * 2, 40),
        max_scan_tuples=settings.SEARCH_HNSW_MAX_SCAN_TUPLES,
    )


def plan_named(name: str, *, limit: int) -> VectorPlan:
    """A plan forced by name (tests and benchmarks)."""
    if name == PLAN_EXACT:
        return EXACT
    if name == PLAN_HNSW:
        return hnsw_plan(limit)
    if name == PLAN_TENANT_HNSW:
        return tenant_hnsw_plan(limit)
    raise ValueError(f"Unknown vector search plan {name!r}")


def plan_before(
    *, table: VectorTable, model: str, scope: tuple, limit: int, narrowed: bool = False
) -> VectorPlan | None:
    """The plan known without reading the caller's rows, or None when it depends on how many
    they hold (the search statement counts them: plan_after_count). No query: the ready
    tenant indexes are cached per process (search.tenant_indexes)."""
    if narrowed:
        return EXACT
    from search import tenant_indexes

    if tenant_indexes.is_ready(table=table, model=model, scope=scope):
        return tenant_hnsw_plan(limit)
    return None


def plan_after_count(held: int, *, limit: int) -> VectorPlan:
    return EXACT if held <= settings.SEARCH_EXACT_MAX_ROWS else hnsw_plan(limit)


def order_expression(dimensions: int) -> Cast:
    """The expression every HNSW index on an embedded table is built on (the column is
    untyped; an index needs fixed dimensions): a query orders by it to use one."""
    return Cast("embedding", VectorField(dimensions=dimensions))


def order_sql(table: VectorTable, dimensions: int) -> str:
    """order_expression() as index DDL spells it."""
    return f"({table.vector_column}::vector({int(dimensions)}))"


_SCAN_SETTINGS = ("hnsw.ef_search", "hnsw.iterative_scan", "hnsw.max_scan_tuples", "enable_sort")
_RESET_SQL = "SELECT set_config(name, reset_val, false) FROM pg_settings WHERE name = ANY(%s)"


def fetch_with_scan_settings(cursor, plan: VectorPlan, sql: str, params: list) -> list:
    """The rows of an index plan's statement `sql`, run with iterative, wider HNSW scans:
    the settings, the statement and the settings' reset go to the server as one message
    (three statements, one round trip; client-side binding, as Django's PostgreSQL
    backend does by default). enable_sort off: the planner must not prefer sorting the
    caller's rows over the index it was chosen for. In autocommit the three run as one
    implicit transaction, so a failing statement takes the settings back with it; inside
    the caller's transaction, that transaction's rollback does (SET is transactional)."""
    values = (str(int(plan.ef_search)), "relaxed_order", str(int(plan.max_scan_tuples)), "off")
    settings_sql = "SELECT " + ", ".join("set_config(%s, %s, false)" for _ in _SCAN_SETTINGS)
    settings_params = [item for pair in zip(_SCAN_SETTINGS, values, strict=True) for item in pair]
    cursor.execute(f"{settings_sql}; {sql}; {_RESET_SQL}", [*settings_params, *params, list(_SCAN_SETTINGS)])
    cursor.nextset()
    return cursor.fetchall()
