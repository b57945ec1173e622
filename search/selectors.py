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

How a search is planned: search.vector_plan decides, as it does for every embedded table
(SPEC §7: left to the planner, a filtered HNSW scan can silently return nothing for a
mid-sized tenant):
- conversation-scoped search is exact;
- a caller with a partial HNSW index of their own (search.tenant_indexes: built for the
  callers above SEARCH_TENANT_INDEX_MIN_ROWS vectors) is served by it;
- otherwise global search is exact while the caller holds at most SEARCH_EXACT_MAX_ROWS
  vectors of the model, else it uses the model's shared HNSW index with
  `hnsw.iterative_scan = relaxed_order` (the scan continues until enough of the caller's
  rows are found), a larger `hnsw.ef_search`, and re-sorts what comes back by exact distance.
The exact plan orders by `embedding <=> q`, which no index matches, so the planner cannot
pick an HNSW index for it; the index plans order by `embedding::vector(<dims>) <=> q`, the
expression the per-model and per-tenant partial indexes are built on; with a tenant index
in place PostgreSQL picks it over the shared one (its predicate is the statement's filter).

Round trips (search_statement): the plan decision is not a query of its own. A caller with
a ready tenant index is known from a per-process cache (no query). Otherwise one statement
counts the caller's vectors (up to SEARCH_EXACT_MAX_ROWS + 1), ranks them exactly only when
that count allows it, and joins the k winners to their messages by primary key; for most
callers that is the whole search. The index plans set the HNSW settings with set_config()
before their statement and reset them after it, in the same message to the server (three
statements, one round trip, no transaction of their own).
The SQL is compiled by the ORM (through scoped()) once per shape and reused.
"""

import functools
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID, uuid4

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Count, F, Max, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast
from pgvector.django import CosineDistance

from conversations.models import Message
from raptorflow import metrics
from raptorflow.db_router import replica_alias
from raptorflow.tenancy import scoped
from search import statements, vector_plan
from search.models import MessageEmbedding, SearchExclusion
from search.statements import uuid_of
from search.tenant_indexes import MESSAGE_VECTORS
from search.vector_plan import PLAN_EXACT, PLAN_HNSW, PLAN_TENANT_HNSW, order_expression

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
    # False for a message on a branch its conversation does not show (an edited question's
    # earlier version, another answer): still found, marked so.
    on_active_branch: bool = True


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
    """The plan semantic_search would pick (search.vector_plan), for callers that want to
    know it beforehand; semantic_search decides the same inside its own statement."""
    plan = vector_plan.plan_before(
        table=MESSAGE_VECTORS,
        model=model,
        scope=(organization, user),
        limit=10,
        narrowed=conversation_id is not None,
    )
    if plan is not None:
        return plan.name
    # Counting stops at threshold + 1: a huge tenant costs no more than a small one.
    threshold = settings.SEARCH_EXACT_MAX_ROWS
    held = embeddings_visible_to(user=user, organization=organization, model=model, using=using)[
        : threshold + 1
    ].count()
    return vector_plan.plan_after_count(held, limit=10).name


def hnsw_order_expression(dimensions: int) -> Cast:
    """The expression every HNSW index on the embeddings is built on."""
    return order_expression(dimensions)


def _hit(row: Sequence) -> SearchHit:
    message_id, conversation_id, distance, role, content, created_at, on_active_branch = row
    return SearchHit(
        on_active_branch=on_active_branch,
        message_id=message_id,
        conversation_id=conversation_id,
        role=role,
        content=content,
        similarity=similarity_from_distance(distance),
        created_at=created_at,
    )


_RANK_FIELDS = ("message_id", "conversation_id", "distance")
_HIT_COLUMNS = (
    "ranked.message_id, ranked.conversation_id, ranked.distance, m.role, m.content, m.created_at, m.on_active_branch"
)


def _sql(queryset: QuerySet) -> tuple[str, tuple]:
    return queryset.query.get_compiler(using=queryset.db).as_sql()


def search_statement(
    *,
    user,
    organization,
    query_vector: Sequence[float],
    model: str,
    limit: int,
    conversation_id=None,
    exclude_message_ids: Sequence = (),
    plan: str | None = None,
    using: str = DEFAULT_DB_ALIAS,
    message_ids: Sequence | None = None,
) -> tuple[str, list]:
    """The one statement a search runs: the caller's vectors ranked (exact, or through the
    model's HNSW index), joined to their messages for the winners only.

    With `plan` None the plan decision is part of the statement: it counts the caller's
    vectors (stopping at SEARCH_EXACT_MAX_ROWS + 1) and ranks exactly only when they are
    few; the first column is then that count (NULL hit columns when the caller has more,
    and semantic_search goes on with the HNSW plan). The ranking is a MATERIALIZED CTE with
    its LIMIT, so the messages are read by primary key for the k winners only (joining them
    before the ranking made PostgreSQL hash-join the whole message table). Both sides go
    through raptorflow.tenancy.scoped(). `message_ids` restricts the ranking to those messages.

    The SQL is compiled by the ORM once per shape (plan, scope, dimensions, limit, number of
    ids) and kept: compiling it took longer than running it for most callers. Every value
    is a parameter, filled in per call."""
    exclude_message_ids = list(exclude_message_ids)
    compiled = _statement_template(
        using=using,
        plan=plan,
        dimensions=len(query_vector),
        limit=limit,
        in_conversation=conversation_id is not None,
        excluded=len(exclude_message_ids),
        only=None if message_ids is None else len(message_ids),
        threshold=settings.SEARCH_EXACT_MAX_ROWS,
    )
    values = {
        **statements.caller_values(user=user, organization=organization, model=model, query_vector=query_vector),
        "conversation": None if conversation_id is None else uuid_of(conversation_id),
        **statements.ids_values("exclude", exclude_message_ids),
        **statements.ids_values("only", message_ids),
    }
    return statements.fill(compiled, values)


@functools.lru_cache(maxsize=256)
def _statement_template(
    *,
    using: str,
    plan: str | None,
    dimensions: int,
    limit: int,
    in_conversation: bool,
    excluded: int,
    only: int | None,
    threshold: int,
) -> tuple[str, tuple]:
    """The statement compiled with a unique stand-in for each per-call value; its
    parameters list the stand-ins as Slots (search.statements)."""
    stand_ins, vector = statements.caller_stand_ins(dimensions)
    stand_ins |= {
        "conversation": uuid4() if in_conversation else None,
        **statements.id_stand_ins("exclude", excluded),
        **statements.id_stand_ins("only", only or 0),
    }
    sql, params = _compile_statement(
        user=stand_ins["owner"],
        organization=stand_ins["organization"],
        query_vector=vector,
        model=stand_ins["model"],
        limit=limit,
        conversation_id=stand_ins["conversation"],
        exclude_message_ids=[stand_ins["exclude", index] for index in range(excluded)],
        plan=plan,
        using=using,
        message_ids=None if only is None else [stand_ins["only", index] for index in range(only)],
        threshold=threshold,
    )
    return statements.template(sql, params, stand_ins)


def _compile_statement(
    *,
    user,
    organization,
    query_vector: Sequence[float],
    model: str,
    limit: int,
    conversation_id,
    exclude_message_ids: Sequence,
    plan: str | None,
    using: str,
    message_ids: Sequence | None,
    threshold: int,
) -> tuple[str, list]:
    """search_statement's SQL and parameters, compiled by the ORM for these values."""
    queryset = embeddings_visible_to(
        user=user, organization=organization, model=model, conversation_id=conversation_id, using=using
    )
    if message_ids is not None:
        queryset = queryset.filter(message_id__in=message_ids)
    if exclude_message_ids:
        queryset = queryset.exclude(message_id__in=exclude_message_ids)
    index_plan = plan in (PLAN_HNSW, PLAN_TENANT_HNSW)
    if index_plan:
        # relaxed_order may return rows slightly out of order: take a few more than asked,
        # ordered by the distance alone (what the index scan delivers); semantic_search
        # re-sorts them by their exact distance.
        order, ordering = hnsw_order_expression(len(query_vector)), ("distance",)
        candidates = vector_plan.hnsw_plan(limit).candidates(limit)
    else:
        order, ordering, candidates = "embedding", ("distance", "message_id"), limit
    ranked_sql, ranked_params = _sql(
        queryset.annotate(distance=CosineDistance(order, list(query_vector)))
        .order_by(*ordering)
        .values(*_RANK_FIELDS)[:candidates]
    )
    # LATERAL with LIMIT 1 (the id is the primary key): one index probe per winner, never a
    # join over all of the caller's messages.
    messages_sql, messages_params = _sql(
        scoped(Message, user=user, organization=organization)
        .using(using)
        .filter(id=RawSQL("ranked.message_id", ()))
        .values("role", "content", "created_at", "on_active_branch")[:1]
    )
    # The pieces are SQL compiled by the ORM; every value is a parameter.
    hits = f"SELECT {_HIT_COLUMNS} FROM ranked CROSS JOIN LATERAL ({messages_sql}) m"  # noqa: S608
    if index_plan:
        # No ORDER BY here: PostgreSQL takes the CTE's rows as already sorted by distance (they
        # are only nearly so) and would stop reading them at the LIMIT. semantic_search sorts.
        return f"WITH ranked AS MATERIALIZED ({ranked_sql}) {hits}", [*ranked_params, *messages_params]
    hits += " ORDER BY ranked.distance, ranked.message_id LIMIT %s"
    if plan == PLAN_EXACT:
        return f"WITH ranked AS MATERIALIZED ({ranked_sql}) {hits}", [*ranked_params, *messages_params, limit]
    held_sql, held_params = _sql(
        embeddings_visible_to(user=user, organization=organization, model=model, using=using).values("pk")[
            : threshold + 1
        ]
    )
    # When the count says HNSW, the ranking's one-time filter is false and its scan never runs.
    sql = (
        f"WITH held AS (SELECT count(*) AS n FROM ({held_sql}) h), "  # noqa: S608
        f"ranked AS MATERIALIZED (SELECT * FROM ({ranked_sql}) r WHERE (SELECT n FROM held) <= %s) "
        f"SELECT held.n, hit.* FROM held LEFT JOIN ({hits}) hit ON true ORDER BY hit.distance, hit.message_id"
    )
    return sql, [*held_params, *ranked_params, threshold, *messages_params, limit]


def _semantic_search(
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
    message_ids: Sequence | None = None,
) -> tuple[list[SearchHit], str]:
    common = {
        "user": user,
        "organization": organization,
        "query_vector": query_vector,
        "model": model,
        "limit": limit,
        "conversation_id": conversation_id,
        "exclude_message_ids": list(exclude_message_ids),
        "using": using,
        "message_ids": message_ids,
    }
    if plan is not None:
        chosen = vector_plan.plan_named(plan, limit=limit)
    else:
        chosen = vector_plan.plan_before(
            table=MESSAGE_VECTORS,
            model=model,
            scope=(organization, user),
            limit=limit,
            narrowed=conversation_id is not None or message_ids is not None,
        )
    rows = None
    with connections[using].cursor() as cursor:
        if chosen is None:
            cursor.execute(*search_statement(**common))
            rows = cursor.fetchall()
            chosen = vector_plan.plan_after_count(rows[0][0], limit=limit)
            rows = [row[1:] for row in rows if row[1] is not None] if chosen is vector_plan.EXACT else None
        if chosen.uses_index:
            rows = vector_plan.fetch_with_scan_settings(cursor, chosen, *search_statement(**common, plan=chosen.name))
            rows = sorted(rows, key=lambda row: (row[2], row[0]))[:limit]
            if len(rows) < limit:
                # The scan stopped short (SEARCH_HNSW_MAX_SCAN_TUPLES reached before enough of
                # the caller's rows): exact search is always complete. Rare and slower; a
                # caller who holds fewer than `limit` matching rows gets the same answer.
                cursor.execute(*search_statement(**common, plan=PLAN_EXACT))
                rows = cursor.fetchall()
        elif rows is None:
            cursor.execute(*search_statement(**common, plan=PLAN_EXACT))
            rows = cursor.fetchall()
    hits = [_hit(row) for row in rows]
    if min_similarity is not None:
        hits = [hit for hit in hits if hit.similarity >= min_similarity]
    return hits, chosen.name


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
    best first. `plan` forces exact/hnsw/tenant_hnsw (for tests and benchmarks); default:
    chosen as choose_plan() would, inside the search statement itself.
    `using`: the database alias (raptorflow.db_router.replica_alias() for lag-tolerant reads).

    Round trips per call: one (search_statement: plan decision, ranking and the winners'
    messages) for conversation scope, for callers with at most SEARCH_EXACT_MAX_ROWS vectors
    and for callers with their own index (the scan settings, the HNSW ranking with the
    messages and the settings' reset, sent together); larger callers without one add that
    message to the counting statement: two."""
    hits, _ = _semantic_search(
        user=user,
        organization=organization,
        query_vector=query_vector,
        model=model,
        limit=limit,
        conversation_id=conversation_id,
        min_similarity=min_similarity,
        exclude_message_ids=exclude_message_ids,
        plan=plan,
        using=using,
    )
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


def _hybrid_search(
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
) -> tuple[list[SearchHit], str]:
    exclude_message_ids = list(exclude_message_ids)
    candidates = max(limit * 3, 30)
    vector_hits, plan = _semantic_search(
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
        extra, _ = _semantic_search(
            user=user,
            organization=organization,
            query_vector=query_vector,
            model=model,
            limit=len(missing),
            conversation_id=conversation_id,
            message_ids=missing,
            using=using,
        )
        hits.update({hit.message_id: hit for hit in extra})

    fused = sorted(hits.values(), key=lambda hit: (-scores.get(hit.message_id, 0.0), -hit.similarity))
    if min_similarity is not None:
        fused = [hit for hit in fused if hit.similarity >= min_similarity]
    return fused[:limit], plan


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
    hits, _ = _hybrid_search(
        user=user,
        organization=organization,
        query=query,
        query_vector=query_vector,
        model=model,
        limit=limit,
        conversation_id=conversation_id,
        min_similarity=min_similarity,
        exclude_message_ids=exclude_message_ids,
        using=using,
    )
    return hits


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
    hits, plan = _hybrid_search(query=query, **common) if mode == MODE_HYBRID else _semantic_search(**common)
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
