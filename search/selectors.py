"""Reads of the search app; the one place that computes vector distances.

Reusable by other apps (the RAG pipeline):

    semantic_search(*, user, organization, query_vector, model, limit, conversation_id=None,
                    min_similarity=None, exclude_message_ids=(), plan=None, using="default") -> list[SearchHit]
    hybrid_search(*, user, organization, query, query_vector, model, limit, conversation_id=None,
                  min_similarity=None, exclude_message_ids=(), using="default") -> list[SearchHit]
    search_messages(*, user, organization, query, limit, mode="vector", conversation_id=None,
                    min_similarity=None, exclude_message_ids=()) -> SearchResults
        embeds `query` with the active model's provider, then runs one of the above on the
        read replica when one is configured (raptorflow.db_router.replica_alias()).
    embedding_stats(*, user, organization) -> EmbeddingStats

`model` is the model whose vectors are searched: pass `provider.model` of the provider
that embedded `query_vector` (search.providers.get_embedding_provider()).

A SearchHit carries message_id, conversation_id, role, content, similarity, created_at
(the message's), with similarity = max(0, 1 - cosine distance). Every read goes through
raptorflow.tenancy.scoped(): a caller only ever sees vectors of their own conversations
(organization + owner). Every query filters on one model: vectors of different models are
never compared.

How a search is planned (SPEC §7: left to the planner, a filtered HNSW scan can silently
return nothing for a mid-sized tenant):
- conversation-scoped search is exact;
- global search is exact while the caller holds at most SEARCH_EXACT_MAX_ROWS vectors of the
  model, else it uses the model's HNSW index with `hnsw.iterative_scan = relaxed_order`
  (the scan continues until enough of the caller's rows are found), a larger
  `hnsw.ef_search`, and re-sorts what comes back by exact distance.
The exact plan orders by `embedding <=> q`, which no index matches, so the planner cannot
pick the HNSW index for it; the HNSW plan orders by `embedding::vector(<dims>) <=> q`, the
expression the per-model partial index is built on (search.vector_index).
"""

import re
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Count, F, Max, QuerySet
from django.db.models.functions import Cast
from pgvector.django import CosineDistance, VectorField

from conversations.models import Message
from raptorflow import metrics
from raptorflow.db_router import replica_alias
from raptorflow.tenancy import scoped
from search.models import MessageEmbedding, SearchExclusion

PLAN_EXACT = "exact"
PLAN_HNSW = "hnsw"

MODE_VECTOR = "vector"
MODE_HYBRID = "hybrid"
MODES = (MODE_VECTOR, MODE_HYBRID)

# Reciprocal rank fusion constant (Cormack et al.): dampens the weight of top ranks.
RRF_K = 60
# Words of a query that reach the full-text side (a 2,000-character query has ~300).
MAX_QUERY_TERMS = 64


@dataclass(frozen=True)
class SearchHit:
    message_id: UUID
    conversation_id: UUID
    role: str
    content: str
    similarity: float
    created_at: datetime


@dataclass(frozen=True)
class SearchResults:
    hits: list[SearchHit]
    model: str
    mode: str
    plan: str


@dataclass(frozen=True)
class ModelCount:
    model: str
    dimensions: int
    count: int


@dataclass(frozen=True)
class EmbeddingStats:
    provider: str
    model: str
    dimensions: int
    total_messages: int
    embedded_messages: int
    excluded_messages: int
    pending_messages: int
    coverage: float
    by_model: list[ModelCount] = field(default_factory=list)


def similarity_from_distance(distance: float | None) -> float:
    if distance is None:
        return 0.0
    return max(0.0, 1.0 - float(distance))


def embeddings_visible_to(*, user, organization, model: str, conversation_id=None, using=DEFAULT_DB_ALIAS) -> QuerySet:
    queryset = scoped(MessageEmbedding, user=user, organization=organization).using(using).filter(model=model)
    if conversation_id is not None:
        queryset = queryset.filter(conversation_id=conversation_id)
    return queryset


def choose_plan(*, user, organization, model: str, conversation_id=None, using=DEFAULT_DB_ALIAS) -> str:
    """Exact for one conversation and for callers with few vectors; HNSW above that."""
    if conversation_id is not None:
        return PLAN_EXACT
    threshold = settings.SEARCH_EXACT_MAX_ROWS
    # Counting stops at threshold + 1: a huge tenant costs no more than a small one.
    held = embeddings_visible_to(user=user, organization=organization, model=model, using=using)[
        : threshold + 1
    ].count()
    return PLAN_EXACT if held <= threshold else PLAN_HNSW


def hnsw_order_expression(dimensions: int) -> Cast:
    """The expression every per-model HNSW index is built on."""
    return Cast("embedding", VectorField(dimensions=dimensions))


def _hits(rows: Iterable[dict], *, user, organization, using: str) -> list[SearchHit]:
    """SearchHits for ranked embedding rows. The messages are read afterwards, by id, for
    the k winners only: joining them before the ranking made PostgreSQL hash-join the
    whole message table for every search."""
    rows = list(rows)
    messages = {
        message["id"]: message
        for message in scoped(Message, user=user, organization=organization)
        .using(using)
        .filter(id__in=[row["message_id"] for row in rows])
        .values("id", "role", "content", "created_at")
    }
    return [
        SearchHit(
            message_id=row["message_id"],
            conversation_id=row["conversation_id"],
            role=message["role"],
            content=message["content"],
            similarity=similarity_from_distance(row["distance"]),
            created_at=message["created_at"],
        )
        for row in rows
        # A message deleted between the two reads is simply not a result.
        if (message := messages.get(row["message_id"])) is not None
    ]


_RANK_FIELDS = ("message_id", "conversation_id", "distance")


def _exact(queryset: QuerySet, query_vector: Sequence[float], limit: int) -> list[dict]:
    ranked = queryset.annotate(distance=CosineDistance("embedding", list(query_vector))).order_by(
        "distance", "message_id"
    )
    return list(ranked.values(*_RANK_FIELDS)[:limit])


@contextmanager
def _hnsw_scan_settings(alias: str, *, ef_search: int):
    """Iterative, wider HNSW scans for the statements run inside. SET LOCAL ends with the
    transaction; when the caller's own transaction goes on afterwards, the settings are
    reset so its later queries are planned normally."""
    connection = connections[alias]
    outer = connection.in_atomic_block
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute(f"SET LOCAL hnsw.max_scan_tuples = {int(settings.SEARCH_HNSW_MAX_SCAN_TUPLES)}")
        # The plan is chosen here, not by the planner: the HNSW index scan is the only way to
        # get rows in distance order without a sort, so ruling sorts out makes it take the index.
        cursor.execute("SET LOCAL enable_sort = off")
        yield
        if outer:
            for name in _HNSW_SETTINGS:
                cursor.execute(f"RESET {name}")


_HNSW_SETTINGS = ("hnsw.ef_search", "hnsw.iterative_scan", "hnsw.max_scan_tuples", "enable_sort")


def _hnsw(queryset: QuerySet, query_vector: Sequence[float], limit: int) -> list[dict]:
    dimensions = len(query_vector)
    # relaxed_order may return rows slightly out of order: take a few more than asked and
    # re-sort them by their exact distance.
    candidates = max(limit * 2, 40)
    ranked = queryset.annotate(distance=CosineDistance(hnsw_order_expression(dimensions), list(query_vector))).order_by(
        "distance"
    )
    with _hnsw_scan_settings(queryset.db, ef_search=max(settings.SEARCH_HNSW_EF_SEARCH, candidates)):
        rows = list(ranked.values(*_RANK_FIELDS)[:candidates])
    rows.sort(key=lambda row: (row["distance"], row["message_id"]))
    return rows[:limit]


def semantic_search(
    *,
    user,
    organization,
    query_vector: Sequence[float],
    model: str,
    limit: int,
    conversation_id=None,
    min_similarity: float | None = None,
    exclude_message_ids: Iterable = (),
    plan: str | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> list[SearchHit]:
    """The caller's `limit` messages nearest to `query_vector` among vectors of `model`,
    best first. `plan` forces exact/hnsw (for tests and benchmarks); default: choose_plan().
    `using`: the database alias (raptorflow.db_router.replica_alias() for lag-tolerant reads)."""
    queryset = embeddings_visible_to(
        user=user, organization=organization, model=model, conversation_id=conversation_id, using=using
    )
    exclude_message_ids = list(exclude_message_ids)
    if exclude_message_ids:
        queryset = queryset.exclude(message_id__in=exclude_message_ids)
    plan = plan or choose_plan(
        user=user, organization=organization, model=model, conversation_id=conversation_id, using=using
    )
    rows = (_hnsw if plan == PLAN_HNSW else _exact)(queryset, query_vector, limit)
    hits = _hits(rows, user=user, organization=organization, using=using)
    if min_similarity is not None:
        hits = [hit for hit in hits if hit.similarity >= min_similarity]
    return hits


def full_text_terms(query: str) -> str:
    """The query's distinct words joined with OR, for websearch_to_tsquery: a long query
    then still matches messages that share some of its words (AND of 300 words matches
    nothing)."""
    terms: list[str] = []
    for word in re.findall(r"\w+", query.lower()):
        # "or" is websearch syntax; the other operators are stop words anyway.
        if word not in terms and word != "or":
            terms.append(word)
        if len(terms) >= MAX_QUERY_TERMS:
            break
    return " or ".join(terms)


def _full_text_ranked(
    *, user, organization, query: str, model: str, conversation_id, exclude_message_ids, limit, using
):
    terms = full_text_terms(query)
    if not terms:
        return []
    tsquery = SearchQuery(terms, search_type="websearch", config="english")
    # The same expression as the GIN index message_content_fts on conversations_message.
    document = SearchVector("content", config="english")
    messages = (
        scoped(Message, user=user, organization=organization)
        .using(using)
        .filter(
            # Only messages search covers: embedded with this model (so never one taken out of
            # search on purpose), like the vector side.
            embeddings__model=model
        )
    )
    if conversation_id is not None:
        messages = messages.filter(conversation_id=conversation_id)
    if exclude_message_ids:
        messages = messages.exclude(id__in=exclude_message_ids)
    ranked = (
        messages.annotate(document=document)
        .filter(document=tsquery)
        .annotate(rank=SearchRank(F("document"), tsquery, cover_density=True))
        .order_by("-rank", "id")
    )
    return list(ranked.values_list("id", flat=True)[:limit])


def hybrid_search(
    *,
    user,
    organization,
    query: str,
    query_vector: Sequence[float],
    model: str,
    limit: int,
    conversation_id=None,
    min_similarity: float | None = None,
    exclude_message_ids: Iterable = (),
    using: str = DEFAULT_DB_ALIAS,
) -> list[SearchHit]:
    """Vector and full-text (Postgres tsvector, English) results fused by reciprocal rank
    fusion. `similarity` is still the cosine similarity of each hit; min_similarity
    filters on it after fusion."""
    exclude_message_ids = list(exclude_message_ids)
    candidates = max(limit * 3, 30)
    vector_hits = semantic_search(
        user=user,
        organization=organization,
        query_vector=query_vector,
        model=model,
        limit=candidates,
        conversation_id=conversation_id,
        exclude_message_ids=exclude_message_ids,
        using=using,
    )
    text_ids = _full_text_ranked(
        user=user,
        organization=organization,
        query=query,
        model=model,
        conversation_id=conversation_id,
        exclude_message_ids=exclude_message_ids,
        limit=candidates,
        using=using,
    )
    scores: dict[UUID, float] = {}
    for ranking in ([hit.message_id for hit in vector_hits], text_ids):
        for position, message_id in enumerate(ranking, start=1):
            scores[message_id] = scores.get(message_id, 0.0) + 1.0 / (RRF_K + position)

    hits = {hit.message_id: hit for hit in vector_hits}
    missing = [message_id for message_id in text_ids if message_id not in hits]
    if missing:
        queryset = embeddings_visible_to(
            user=user, organization=organization, model=model, conversation_id=conversation_id, using=using
        ).filter(message_id__in=missing)
        extra = _hits(_exact(queryset, query_vector, len(missing)), user=user, organization=organization, using=using)
        hits.update({hit.message_id: hit for hit in extra})

    fused = sorted(hits.values(), key=lambda hit: (-scores.get(hit.message_id, 0.0), -hit.similarity))
    if min_similarity is not None:
        fused = [hit for hit in fused if hit.similarity >= min_similarity]
    return fused[:limit]


def search_messages(
    *,
    user,
    organization,
    query: str,
    limit: int,
    mode: str = MODE_VECTOR,
    conversation_id=None,
    min_similarity: float | None = None,
    exclude_message_ids: Iterable = (),
) -> SearchResults:
    """Embeds `query` with the active model's provider (raises its 502/503 ApiErrors) and
    searches the caller's messages in `mode`, on the read replica when there is one (a
    result a moment old is fine for search)."""
    from search.providers import get_embedding_provider

    started = time.perf_counter()
    provider = get_embedding_provider()
    query_vector = provider.embed_one(query)
    common = {
        "user": user,
        "organization": organization,
        "query_vector": query_vector,
        "model": provider.model,
        "limit": limit,
        "conversation_id": conversation_id,
        "min_similarity": min_similarity,
        "exclude_message_ids": exclude_message_ids,
        "using": replica_alias(),
    }
    plan = choose_plan(
        user=user,
        organization=organization,
        model=provider.model,
        conversation_id=conversation_id,
        using=common["using"],
    )
    hits = hybrid_search(query=query, **common) if mode == MODE_HYBRID else semantic_search(plan=plan, **common)
    metrics.observe_search(mode=mode, seconds=time.perf_counter() - started, results=len(hits))
    return SearchResults(hits=hits, model=provider.model, mode=mode, plan=plan)


def embedding_stats(*, user, organization) -> EmbeddingStats:
    """Counts of the caller's own vectors by model and how many of their messages the
    active model covers."""
    from search.providers import active_spec

    spec = active_spec()
    embeddings = scoped(MessageEmbedding, user=user, organization=organization)
    by_model = [
        ModelCount(model=row["model"], dimensions=row["dimensions"], count=row["count"])
        for row in embeddings.values("model")
        .annotate(count=Count("id"), dimensions=Max("dimensions"))
        .order_by("model")
    ]
    total = scoped(Message, user=user, organization=organization).count()
    embedded = next((entry.count for entry in by_model if entry.model == spec.model), 0)
    excluded = scoped(SearchExclusion, user=user, organization=organization).count()
    return EmbeddingStats(
        provider=spec.provider,
        model=spec.model,
        dimensions=spec.dimensions,
        total_messages=total,
        embedded_messages=embedded,
        excluded_messages=excluded,
        pending_messages=max(0, total - embedded - excluded),
        coverage=round(embedded / total, 4) if total else 0.0,
        by_model=by_model,
    )


def unscoped_messages_to_embed(*, model: str, organization_id=None, conversation_id=None) -> QuerySet:
    """Messages (of every tenant: for the backfill and reindex commands) that have no
    vector of `model` and were not taken out of search on purpose, oldest first with the
    id as tie-breaker so a run can resume by keyset."""
    messages = Message.objects.exclude(embeddings__model=model).filter(
        search_exclusion__isnull=True,
        # Nothing to embed in an empty message.
        content__regex=r"\S",
    )
    if organization_id is not None:
        messages = messages.filter(organization_id=organization_id)
    if conversation_id is not None:
        messages = messages.filter(conversation_id=conversation_id)
    return messages.order_by("created_at", "id")
