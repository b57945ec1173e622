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

The plan (exact, the organization's own HNSW index, or the model's shared one) is search's
(documents.search_plan); the plan decision, both rankings and the winners' rows are one
statement (ranking_statement). Hybrid mode fuses the vector ranking with PostgreSQL full
text over the chunks' stored tsvector by reciprocal rank fusion, as message search does;
`similarity` stays the cosine similarity.
"""

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID, uuid4

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import F, Window
from django.db.models.expressions import RawSQL
from django.db.models.functions import RowNumber
from pgvector.django import CosineDistance

from documents.models import ChunkEmbedding, DocumentChunk
from documents.search_plan import plan_before
from raptorflow import metrics
from raptorflow.db_router import replica_alias
from raptorflow.tenancy import scoped
from search import statements, vector_plan
from search.selectors import MODE_HYBRID, MODE_VECTOR, RRF_K, full_text_terms, similarity_from_distance
from search.vector_plan import VectorPlan

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


def _sql(queryset) -> tuple[str, list]:
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    return sql, list(params)


def _text_ranked(*, user, organization, terms: str, document_ids, limit: int, using: str):
    """The caller's chunks matching `terms` (full_text_terms of the query), best full-text
    rank first, with their position."""
    tsquery = SearchQuery(terms, search_type="websearch", config="english")
    # Chunks without a vector of this model (only while a reindex catches up) may rank here;
    # they have no distance and drop out of the results, as they do from the vector side.
    chunks = scoped(DocumentChunk, user=user, organization=organization).using(using).filter(search_vector=tsquery)
    if document_ids is not None:
        chunks = chunks.filter(document_id__in=list(document_ids))
    # ts_rank, not the cover density ts_rank_cd: a query's words match most chunks of a
    # team's documents, and ts_rank_cd cost 4× as much over a thousand of them (the fusion
    # leaves proximity to the vector side).
    rank = SearchRank(F("search_vector"), tsquery)
    return (
        chunks.annotate(position=Window(RowNumber(), order_by=[rank.desc(), F("id").asc()]))
        .order_by("position")
        .values("id", "position")[:limit]
    )


def ranking_statement(
    *,
    user,
    organization,
    query: str,
    query_vector: Sequence[float],
    model: str,
    candidates: int,
    hybrid: bool,
    document_ids,
    plan: VectorPlan | None,
    using: str,
) -> tuple[str, list]:
    """The one statement a chunk search runs. Its rows: (held, chunk id, document id, title,
    page, heading, text, char_start, char_end, distance, from the vector ranking, full-text
    position).

    The vector ranking (exact, or through an HNSW index when `plan` says so) and, in hybrid
    mode, the full-text ranking are MATERIALIZED CTEs with their LIMIT; only their winners'
    chunk rows are read (a LATERAL probe by primary key each), and a text-only winner's
    cosine distance is computed from its vector there. With `plan` None the plan decision is
    part of the statement: it counts the caller's readable vectors (stopping at
    SEARCH_EXACT_MAX_ROWS + 1) into `held` and ranks exactly only when they are few (no
    rows besides `held` otherwise: rank_chunks goes on with an index plan). Every part goes
    through raptorflow.tenancy.scoped(); every value is a parameter. Compiled by the ORM
    once per shape and filled in per call (search.statements)."""
    terms = full_text_terms(query) if hybrid else ""
    document_ids = None if document_ids is None else list(document_ids)
    compiled = _ranking_template(
        using=using,
        plan=None if plan is None else plan.name,
        dimensions=len(query_vector),
        candidates=candidates,
        with_text=bool(terms),
        documents=None if document_ids is None else len(document_ids),
        threshold=settings.SEARCH_EXACT_MAX_ROWS,
    )
    values = {
        **statements.caller_values(user=user, organization=organization, model=model, query_vector=query_vector),
        "terms": terms,
        **statements.ids_values("document", document_ids),
    }
    return statements.fill(compiled, values)


@functools.lru_cache(maxsize=128)
def _ranking_template(
    *,
    using: str,
    plan: str | None,
    dimensions: int,
    candidates: int,
    with_text: bool,
    documents: int | None,
    threshold: int,
) -> tuple[str, tuple]:
    stand_ins, vector = statements.caller_stand_ins(dimensions)
    stand_ins |= {
        "terms": f"terms {uuid4().hex}" if with_text else None,
        **statements.id_stand_ins("document", documents or 0),
    }
    sql, params = _compile_ranking(
        user=stand_ins["owner"],
        organization=stand_ins["organization"],
        terms=stand_ins["terms"],
        query_vector=vector,
        model=stand_ins["model"],
        candidates=candidates,
        document_ids=None if documents is None else [stand_ins["document", index] for index in range(documents)],
        plan=plan,
        using=using,
        threshold=threshold,
    )
    return statements.template(sql, params, stand_ins)


def _compile_ranking(
    *,
    user,
    organization,
    terms: str | None,
    query_vector: list,
    model: str,
    candidates: int,
    document_ids,
    plan: str | None,
    using: str,
    threshold: int,
) -> tuple[str, list]:
    """ranking_statement's SQL and parameters, compiled by the ORM for these values."""
    vectors = readable_vectors(
        user=user, organization=organization, model=model, document_ids=document_ids, using=using
    )
    vector = query_vector
    fetched = candidates
    if plan is not None and plan != vector_plan.PLAN_EXACT:
        # relaxed_order: a few more than asked, ordered by distance alone; re-sorted by
        # rank_chunks.
        order, ordering = vector_plan.order_expression(len(vector)), ("distance",)
        fetched = vector_plan.plan_named(plan, limit=candidates).candidates(candidates)
    else:
        order, ordering = "embedding", ("distance", "chunk_id")
    ranked_sql, ranked_params = _sql(
        vectors.annotate(distance=CosineDistance(order, vector))
        .order_by(*ordering)
        .values("chunk_id", "distance")[:fetched]
    )
    params: list = []
    if plan is None:
        held_sql, held_params = _sql(
            readable_vectors(user=user, organization=organization, model=model, using=using).values("pk")[
                : threshold + 1
            ]
        )
        # When the count says "many", the ranking's one-time filter is false: its scan never runs.
        ctes = [
            f"held AS (SELECT count(*) AS n FROM ({held_sql}) h)",  # noqa: S608
            f"ranked AS MATERIALIZED (SELECT * FROM ({ranked_sql}) r WHERE (SELECT n FROM held) <= %s)",  # noqa: S608
        ]
        params += [*held_params, *ranked_params, threshold]
    else:
        ctes = ["held AS (SELECT NULL::bigint AS n)", f"ranked AS MATERIALIZED ({ranked_sql})"]
        params += ranked_params
    if terms:
        texts_sql, texts_params = _sql(
            _text_ranked(
                user=user,
                organization=organization,
                terms=terms,
                document_ids=document_ids,
                limit=candidates,
                using=using,
            )
        )
        ctes.append(f"texts AS MATERIALIZED ({texts_sql})")
        params += texts_params
    else:
        ctes.append("texts AS (SELECT NULL::uuid AS id, NULL::bigint AS position WHERE false)")
    chunk_sql, chunk_params = _sql(
        scoped(DocumentChunk, user=user, organization=organization)
        .using(using)
        .filter(id=RawSQL("candidate.chunk_id", ()))
        .values("id", "document_id", "document__title", "page", "heading", "text", "char_start", "char_end")[:1]
    )
    distance_sql, distance_params = _sql(
        vectors.filter(chunk_id=RawSQL("candidate.chunk_id", ()))
        .annotate(distance=CosineDistance("embedding", vector))
        .values("distance")[:1]
    )
    # The pieces are SQL compiled by the ORM; every value is a parameter.
    hits = (
        "SELECT c.*, COALESCE(ranked.distance, e.distance) AS distance, ranked.chunk_id IS NOT NULL AS ranked, "  # noqa: S608
        "texts.position FROM (SELECT chunk_id FROM ranked UNION SELECT id FROM texts) candidate "
        f"CROSS JOIN LATERAL ({chunk_sql}) c "
        "LEFT JOIN ranked ON ranked.chunk_id = candidate.chunk_id "
        "LEFT JOIN texts ON texts.id = candidate.chunk_id "
        f"LEFT JOIN LATERAL ({distance_sql}) e ON ranked.chunk_id IS NULL"
    )
    params += [*chunk_params, *distance_params]
    sql = f"WITH {', '.join(ctes)} SELECT held.n, hit.* FROM held LEFT JOIN ({hits}) hit ON true"  # noqa: S608
    return sql, params


def _run(cursor, statement: tuple[str, list], plan: VectorPlan | None) -> list:
    if plan is not None and plan.uses_index:
        return vector_plan.fetch_with_scan_settings(cursor, plan, *statement)
    cursor.execute(*statement)
    return cursor.fetchall()


def _ranked_rows(*, organization, statement, model: str, limit: int, restricted: bool, using: str):
    """(rows, plan name): the statement run under the plan search's rule picks — one round
    trip for narrow searches, callers with few readable vectors and organizations with their
    own index; two for a large one without (the counting statement first)."""
    chosen = plan_before(organization=organization, model=model, limit=limit, restricted=restricted)
    with connections[using].cursor() as cursor:
        rows = _run(cursor, statement(chosen), chosen)
        if chosen is None:
            chosen = vector_plan.plan_after_count(rows[0][0], limit=limit)
            if chosen.uses_index:
                rows = _run(cursor, statement(chosen), chosen)
        if chosen.uses_index and sum(1 for row in rows if row[10]) < limit:
            # The scan stopped short (SEARCH_HNSW_MAX_SCAN_TUPLES reached before enough of the
            # caller's rows): exact search is always complete.
            rows = _run(cursor, statement(vector_plan.EXACT), vector_plan.EXACT)
    return [row[1:] for row in rows if row[1] is not None], chosen.name


def rank_chunks(
    *,
    user,
    organization,
    query: str,
    query_vector: Sequence[float],
    model: str,
    limit: int,
    mode: str = MODE_VECTOR,
    document_ids=None,
    min_similarity: float | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> tuple[list[ChunkHit], str]:
    """The caller's best `limit` chunks: by cosine distance, or in hybrid mode by reciprocal
    rank fusion of the vector and full-text rankings (each `max(3 × limit, 30)` deep)."""
    hybrid = mode == MODE_HYBRID
    candidates = max(limit * 3, 30) if hybrid else limit

    def statement(plan):
        return ranking_statement(
            user=user,
            organization=organization,
            query=query,
            query_vector=query_vector,
            model=model,
            candidates=candidates,
            hybrid=hybrid,
            document_ids=document_ids,
            plan=plan,
            using=using,
        )

    rows, plan = _ranked_rows(
        organization=organization,
        statement=statement,
        model=model,
        limit=candidates,
        restricted=document_ids is not None,
        using=using,
    )
    # Index plans return their rows nearly in order and a few more than asked.
    by_distance = sorted((row for row in rows if row[9]), key=lambda row: (row[8], str(row[0])))[:candidates]
    if hybrid:
        scores: dict = {}
        for position, row in enumerate(by_distance, start=1):
            scores[row[0]] = 1.0 / (RRF_K + position)
        for row in rows:
            if row[10] is not None:
                scores[row[0]] = scores.get(row[0], 0.0) + 1.0 / (RRF_K + row[10])
        # A text-only chunk without a vector of this model (a reindex catching up) has no
        # distance: left out, as the vector side leaves it out.
        kept = {row[0] for row in by_distance} | {row[0] for row in rows if row[10] is not None}
        ordered = sorted(
            (row for row in rows if row[0] in kept and row[8] is not None),
            key=lambda row: (-scores[row[0]], row[8]),
        )
    else:
        ordered = by_distance
    hits = [_hit(row) for row in ordered]
    if min_similarity is not None:
        hits = [hit for hit in hits if hit.similarity >= min_similarity]
    return hits[:limit], plan


def _hit(row) -> ChunkHit:
    chunk_id, document_id, title, page, heading, text, char_start, char_end, distance = row[:9]
    return ChunkHit(
        chunk_id=chunk_id,
        document_id=document_id,
        title=title,
        page=page,
        heading=heading,
        text=text,
        char_start=char_start,
        char_end=char_end,
        similarity=similarity_from_distance(distance),
    )


def search_chunks(
    *,
    user,
    organization,
    query: str,
    limit: int,
    mode: str = MODE_VECTOR,
    document_ids=None,
    min_similarity: float | None = None,
) -> ChunkResults:
    """Embeds `query` with the active model's provider (its 502/503 errors propagate) and
    ranks the caller's readable chunks, on the read replica when there is one."""
    from search.providers import get_embedding_provider

    started = time.perf_counter()
    provider = get_embedding_provider()
    query_vector = provider.embed_one(query)
    hits, plan = rank_chunks(
        user=user,
        organization=organization,
        query=query,
        query_vector=query_vector,
        model=provider.model,
        limit=limit,
        mode=mode,
        document_ids=document_ids,
        min_similarity=min_similarity,
        using=replica_alias(),
    )
    metrics.observe_search(mode=f"documents_{mode}", seconds=time.perf_counter() - started, results=len(hits))
    return ChunkResults(hits=hits, model=provider.model, mode=mode, plan=plan)
