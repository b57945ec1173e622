"""How a chunk search is planned: search's vector plan (search/vector_plan.py), applied to
the chunk table, which describes itself here once (CHUNK_VECTORS) — the one place documents
reach into search's plan and indexes.

The rule is search's: exact search while the caller can read at most SEARCH_EXACT_MAX_ROWS
vectors of the model (counted inside the ranking statement itself, no further than that
+ 1), the organization's own partial HNSW index once it holds more than
SEARCH_TENANT_INDEX_MIN_ROWS chunk vectors of the model (search.tenant_indexes builds it
after ingestion carries it over), the model's shared HNSW index with iterative scans
otherwise (SPEC §7: left to the planner, a filtered HNSW scan can silently return
nothing). A search restricted to chosen documents is narrow: exact.

Chunk vectors are scoped by organization alone in their tenant index: a caller reads their
organization's shared chunks and their own private ones, a filter inside one organization
that the iterative scan absorbs.
"""

from search import tenant_indexes, vector_index, vector_plan
from search.vector_plan import VectorTable

CHUNK_VECTORS = tenant_indexes.register_table(
    VectorTable("documents_chunkembedding", ("organization_id",), index_prefix="chunk_hnsw")
)


def plan_before(*, organization, model: str, limit: int, restricted: bool):
    """The plan known before counting (exact when restricted to chosen documents, the
    organization's own index when ready), or None: decided by the count the statement makes."""
    return vector_plan.plan_before(
        table=CHUNK_VECTORS, model=model, scope=(organization,), limit=limit, narrowed=restricted
    )


def ensure_model_index(spec) -> bool:
    """The model's shared HNSW index on the chunk vectors (created before its first vector
    is written: ingestion, backfill, reindex)."""
    return vector_index.ensure_index(spec.model, spec.dimensions, table=CHUNK_VECTORS)


def drop_model_index(model: str) -> None:
    vector_index.drop_index(model, table=CHUNK_VECTORS)


def index_organization_if_grown(*, organization_id, spec) -> bool:
    """Schedules the organization's own chunk index once it holds more than
    SEARCH_TENANT_INDEX_MIN_ROWS chunk vectors of the model (after the commit)."""
    return tenant_indexes.index_if_grown(
        table=CHUNK_VECTORS, model=spec.model, dimensions=spec.dimensions, scope=(organization_id,)
    )
