"""How a chunk search is planned: the messages' plan (search.selectors), applied to the
chunk table.

The rule is search's: exact search while the caller can read at most SEARCH_EXACT_MAX_ROWS
vectors of the model (counted no further than that + 1), the model's HNSW index with an
iterative scan and a wider ef_search above it (SPEC §7: left to the planner, a filtered
HNSW scan can silently return nothing). This module is the one place documents reach into
search's plan, so that when the plan choice moves to a table-agnostic module only
`choose_chunk_plan` and `hnsw_scan` change.
"""

from contextlib import contextmanager

from django.conf import settings
from django.db.models import QuerySet

from search import selectors as message_search

PLAN_EXACT = message_search.PLAN_EXACT
PLAN_HNSW = message_search.PLAN_HNSW


def choose_chunk_plan(readable_vectors: QuerySet, *, restricted: bool = False) -> str:
    """Exact for a search restricted to chosen documents and for callers who can read few
    vectors of the model; HNSW above SEARCH_EXACT_MAX_ROWS."""
    if restricted:
        return PLAN_EXACT
    threshold = settings.SEARCH_EXACT_MAX_ROWS
    held = readable_vectors.values("pk")[: threshold + 1].count()
    return PLAN_EXACT if held <= threshold else PLAN_HNSW


@contextmanager
def hnsw_scan(cursor, *, limit: int):
    """search's iterative-scan settings around the HNSW statement run inside."""
    with message_search._hnsw_scan_settings(cursor, ef_search=max(settings.SEARCH_HNSW_EF_SEARCH, limit * 2, 40)):
        yield
