"""How a chunk search is planned: search's vector plan (search/vector_plan.py), applied to
the chunk table.

The rule is search's: exact search while the caller can read at most SEARCH_EXACT_MAX_ROWS
vectors of the model (counted no further than that + 1), the model's HNSW index with an
iterative, wider scan above it (SPEC §7: left to the planner, a filtered HNSW scan can
silently return nothing), its settings sent with the statement in one round trip. A search
restricted to chosen documents is narrow: exact. This module is the one place documents
reach into search's plan.
"""

from django.conf import settings
from django.db.models import QuerySet

from search import vector_plan

PLAN_EXACT = vector_plan.PLAN_EXACT
PLAN_HNSW = vector_plan.PLAN_HNSW


def choose_chunk_plan(readable_vectors: QuerySet, *, restricted: bool = False, limit: int = 10) -> str:
    """Exact for a search restricted to chosen documents and for callers who can read few
    vectors of the model; HNSW above SEARCH_EXACT_MAX_ROWS."""
    if restricted:
        return PLAN_EXACT
    held = readable_vectors.values("pk")[: settings.SEARCH_EXACT_MAX_ROWS + 1].count()
    return vector_plan.plan_after_count(held, limit=limit).name


def fetch_hnsw(cursor, sql: str, params, *, limit: int) -> list:
    """The rows of an HNSW ranking statement, run under search's iterative scan settings."""
    return vector_plan.fetch_with_scan_settings(cursor, vector_plan.hnsw_plan(limit), sql, list(params))
