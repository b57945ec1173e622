"""Reads of the knowledge base: the chunk search that POST /api/search/documents and RAG use.

    search_chunks(*, user, organization, query, limit, mode="vector", document_ids=None,
                  min_similarity=None) -> ChunkResults
    rank_chunks(*, user, organization, query, query_vector, model, limit, mode, document_ids=None)
        -> (list[ChunkHit], plan)     (for a caller that embedded the query already: RAG)

Only what the caller may read is searched: their own documents and those shared with their
organization, through raptorflow.tenancy.scoped() on the chunk vectors (TenantScope.SHARED),
and only vectors of one model — the one the query was embedded with — are compared.
A document not (or no longer) ready has no chunks here: chunks and vectors are written in
one transaction when processing ends (documents.services).

The plan (exact or HNSW) is search's, chosen in documents.search_plan. Hybrid mode fuses the
vector ranking with PostgreSQL full text over the chunks' stored tsvector by reciprocal rank
fusion, as message search does; `similarity` stays the cosine similarity.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import F
from django.db.models.functions import Cast
from pgvector.django import CosineDistance, VectorField

from documents.models import ChunkEmbedding, DocumentChunk
from documents.search_plan import PLAN_HNSW, choose_chunk_plan, fetch_hnsw
from raptorflow import metrics
from raptorflow.db_router import replica_alias
from raptorflow.tenancy import scoped
from search.selectors import MODE_HYBRID, MODE_VECTOR, RRF_K, full_text_terms, similarity_from_distance

SNIPPET_CHARS = 300


@dataclass(frozen=True)
class ChunkHit:
    chunk_id: UUID
    document_id: UUID
    title: str
    page: int | None
    heading: str
    text: str
    char_start: int
    char_end: int
    similarity: float

    @property
    def snippet(self) -> str:
        text = " ".join(self.text.split())
        return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


@dataclass(frozen=True)
class ChunkResults:
    hits: list[ChunkHit]
    model: str
    mode: str
    plan: str


def readable_vectors(*, user, organization, model: str, document_ids=None, using=DEFAULT_DB_ALIAS):
    vectors = scoped(ChunkEmbedding, user=user, organization=organization).using(using).filter(model=model)
    if document_ids is not None:
        vectors = vectors.filter(document_id__in=list(document_ids))
    return vectors


def _vector_ranking(vectors, query_vector: Sequence[float], *, plan: str, limit: int, using: str):
    """[(chunk_id, distance)] best first."""
    vector = list(query_vector)
    if plan == PLAN_HNSW:
        # The expression the per-model partial index is built on (documents.vector_index);
        # relaxed order: a few more than asked, re-sorted by distance here.
        ranked = (
            vectors.annotate(distance=CosineDistance(Cast("embedding", VectorField(dimensions=len(vector))), vector))
            .order_by("distance")
            .values_list("chunk_id", "distance")[: max(limit * 2, 40)]
        )
        sql, params = ranked.query.sql_with_params()
        with connections[using].cursor() as cursor:
            rows = fetch_hnsw(cursor, sql, params, limit=limit)
        return sorted(rows, key=lambda row: (row[1], str(row[0])))[:limit]
    ranked = (
        vectors.annotate(distance=CosineDistance("embedding", vector))
        .order_by("distance", "chunk_id")
        .values_list("chunk_id", "distance")[:limit]
    )
    return list(ranked)


def _text_ranking(*, user, organization, query: str, model: str, document_ids, limit: int, using: str) -> list[UUID]:
    terms = full_text_terms(query)
    if not terms:
        return []
    tsquery = SearchQuery(terms, search_type="websearch", config="english")
    chunks = (
        scoped(DocumentChunk, user=user, organization=organization)
        .using(using)
        # Only chunks the vector side covers: embedded with this model.
        .filter(embeddings__model=model, search_vector=tsquery)
    )
    if document_ids is not None:
        chunks = chunks.filter(document_id__in=list(document_ids))
    ranked = chunks.annotate(rank=SearchRank(F("search_vector"), tsquery, cover_density=True)).order_by("-rank", "id")
    return list(ranked.values_list("id", flat=True)[:limit])


def _hits(*, user, organization, distances: dict, order: list, using: str) -> list[ChunkHit]:
    rows = {
        row["id"]: row
        for row in scoped(DocumentChunk, user=user, organization=organization)
        .using(using)
        .filter(id__in=list(distances))
        .values("id", "document_id", "document__title", "page", "heading", "text", "char_start", "char_end")
    }
    return [
        ChunkHit(
            chunk_id=chunk_id,
            document_id=row["document_id"],
            title=row["document__title"],
            page=row["page"],
            heading=row["heading"],
            text=row["text"],
            char_start=row["char_start"],
            char_end=row["char_end"],
            similarity=similarity_from_distance(distances[chunk_id]),
        )
        for chunk_id in order
        if (row := rows.get(chunk_id)) is not None
    ]


def rank_chunks(
    *, user, organization, query: str, query_vector: Sequence[float], model: str, limit: int,
    mode: str = MODE_VECTOR, document_ids=None, min_similarity: float | None = None, using: str = DEFAULT_DB_ALIAS,
) -> tuple[list[ChunkHit], str]:
    vectors = readable_vectors(user=user, organization=organization, model=model, document_ids=document_ids,
                               using=using)
    plan = choose_chunk_plan(vectors, restricted=document_ids is not None, limit=limit)
    if mode != MODE_HYBRID:
        ranking = _vector_ranking(vectors, query_vector, plan=plan, limit=limit, using=using)
        distances = dict(ranking)
        hits = _hits(user=user, organization=organization, distances=distances, order=[r[0] for r in ranking],
                     using=using)
    else:
        candidates = max(limit * 3, 30)
        ranking = _vector_ranking(vectors, query_vector, plan=plan, limit=candidates, using=using)
        text_ids = _text_ranking(user=user, organization=organization, query=query, model=model,
                                 document_ids=document_ids, limit=candidates, using=using)
        distances = dict(ranking)
        missing = [chunk_id for chunk_id in text_ids if chunk_id not in distances]
        if missing:
            # Text-only hits still report their cosine similarity.
            distances.update(
                _vector_ranking(vectors.filter(chunk_id__in=missing), query_vector, plan="exact",
                                limit=len(missing), using=using)
            )
        scores: dict[UUID, float] = {}
        for ids in ([row[0] for row in ranking], text_ids):
            for position, chunk_id in enumerate(ids, start=1):
                scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + position)
        order = sorted(distances, key=lambda chunk_id: (-scores.get(chunk_id, 0.0), distances[chunk_id]))
        hits = _hits(user=user, organization=organization, distances=distances, order=order, using=using)
    if min_similarity is not None:
        hits = [hit for hit in hits if hit.similarity >= min_similarity]
    return hits[:limit], plan


def search_chunks(
    *, user, organization, query: str, limit: int, mode: str = MODE_VECTOR, document_ids=None,
    min_similarity: float | None = None,
) -> ChunkResults:
    """Embeds `query` with the active model's provider (its 502/503 errors propagate) and
    ranks the caller's readable chunks, on the read replica when there is one."""
    from search.providers import get_embedding_provider

    started = time.perf_counter()
    provider = get_embedding_provider()
    query_vector = provider.embed_one(query)
    hits, plan = rank_chunks(
        user=user, organization=organization, query=query, query_vector=query_vector, model=provider.model,
        limit=limit, mode=mode, document_ids=document_ids, min_similarity=min_similarity, using=replica_alias(),
    )
    metrics.observe_search(mode=f"documents_{mode}", seconds=time.perf_counter() - started, results=len(hits))
    return ChunkResults(hits=hits, model=provider.model, mode=mode, plan=plan)
