"""Vector search benchmark: synthetic 384-d embeddings over 1,000 organizations of skewed
sizes, in the real search_messageembedding table with the real per-model HNSW index.

    .venv/bin/python bench/vectors.py            # 100k vectors
    .venv/bin/python bench/vectors.py --rows 1000000 --reuse   # 1M (index builds take minutes)

Reports the index build times, then for four scope sizes (one user holding 30 %, 10 %, 1 %
and 0.1 % of all rows) and for conversation scope: top-10 latency (p50/p95, the statement's
round trip on the local socket: database time plus a few hundred microseconds), recall@10
against exact search and the fewest rows any query returned, for the candidates side by
side in one run:
- exact search (the reference);
- the planner left alone (shared HNSW index, default ef_search, no iterative scan);
- the previous plan: the model's shared HNSW index, iterative scans, ef_search 200, scan
  cap 50,000 (the tenant indexes hidden by a rolled-back DROP INDEX);
- (c) the same with tuned `hnsw.ef_search` / `hnsw.max_scan_tuples` (a sweep);
- (b) a binary-quantized expression index on the whole model
  (`binary_quantize(embedding::vector(384))::bit(384)`, bit_hamming_ops), scanned
  iteratively for a pool of candidates then re-ranked exactly with the full vectors;
- (a) a partial HNSW index per large tenant, built by the product's own job
  (search.tenant_indexes: predicate = the search's filter), at several ef_search;
- RaptorFlow's own plan (search.selectors.semantic_search, planned by search.vector_plan).
Then the selector's overhead, per scope, side by side for each query: the statements
semantic_search runs timed inside the database (EXPLAIN ANALYZE planning + execution), the
same statements with the same parameters from Python on a bare psycopg cursor, and
semantic_search end to end (query vector given, no embedding); p50/p95 and the ratio
selector / database (`--overhead-only` runs just this part).
It also sweeps ef_search over the whole table (unscoped). Plots recall@10 against p95
latency per bucket to docs/vector-recall-latency-<rows>.png."""

import argparse
import contextlib
import json
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentiles, print_table, setup_django, write_results  # noqa: E402

DIMS = 384
MODEL = "all-MiniLM-L6-v2"
ORGS = 1000
MESSAGES_PER_CONVERSATION = 50
EF_VALUES = [40, 100, 200, 400]
SCOPES = [("30%", 0.30), ("10%", 0.10), ("1%", 0.01), ("0.1%", 0.001)]


def org_sizes(rows: int, rng) -> list[int]:
    """Three named scope sizes, the rest Zipf-like over the other organizations."""
    fixed = [max(1, int(rows * share)) for _, share in SCOPES]
    rest = rows - sum(fixed)
    weights = 1.0 / np.arange(1, ORGS - len(fixed) + 1) ** 1.07
    sizes = np.maximum(1, np.floor(weights / weights.sum() * rest)).astype(int)
    sizes[0] += rest - sizes.sum()
    return fixed + sizes.tolist()


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def clustered(rng, centers: np.ndarray, count: int, noise: float = 0.35) -> np.ndarray:
    picks = centers[rng.integers(0, len(centers), size=count)]
    return unit(picks + rng.normal(scale=noise / np.sqrt(DIMS), size=(count, DIMS)) * np.sqrt(DIMS) / 4)


def load(rows: int, seed: int) -> dict:
    """Writes organizations, owners, conversations, messages and embeddings with COPY."""
    from django.db import connection

    rng = np.random.default_rng(seed)
    centers = unit(rng.normal(size=(200, DIMS)))
    sizes = org_sizes(rows, rng)
    now = datetime.now(tz=UTC)
    tenants = []
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE search_messageembedding, conversations_message, conversations_conversation, "
            "accounts_membership, accounts_organization, accounts_user CASCADE"
        )
        # Bulk-load the way a restore would: no HNSW index to maintain row by row (it is
        # built afterwards, and timed), and no per-row foreign-key triggers (the rows are
        # consistent by construction; needs a superuser, as on the embedded server).
        from search.vector_index import index_name

        cursor.execute(f"DROP INDEX IF EXISTS {index_name(MODEL)}")
        cursor.execute("SET session_replication_role = replica")
        raw = cursor.connection
        from pgvector.psycopg import register_vector

        register_vector(raw)
        with raw.cursor().copy(
            "COPY accounts_organization (id, name, is_personal, settings, created_at, updated_at) FROM STDIN"
        ) as copy:
            for index in range(ORGS):
                org_id = uuid.uuid4()
                tenants.append({"organization": org_id, "owner": uuid.uuid4(), "size": sizes[index]})
                copy.write_row((org_id, f"Bench org {index}", False, "{}", now, now))
        with raw.cursor().copy(
            "COPY accounts_user (id, password, is_superuser, email, name, avatar_url, is_active, is_staff, "
            "default_organization_id, date_joined) FROM STDIN"
        ) as copy:
            for index, tenant in enumerate(tenants):
                copy.write_row(
                    (
                        tenant["owner"],
                        "!",
                        False,
                        f"bench{index}@example.com",
                        "",
                        "",
                        True,
                        False,
                        tenant["organization"],
                        now,
                    )
                )
        conversation_rows, message_rows = [], []
        for tenant in tenants:
            tenant["conversations"] = []
            for start in range(0, tenant["size"], MESSAGES_PER_CONVERSATION):
                conversation_id = uuid.uuid4()
                count = min(MESSAGES_PER_CONVERSATION, tenant["size"] - start)
                tenant["conversations"].append(conversation_id)
                conversation_rows.append((conversation_id, tenant["organization"], tenant["owner"], count))
                for sequence in range(1, count + 1):
                    message_rows.append(
                        (uuid.uuid4(), conversation_id, tenant["organization"], tenant["owner"], sequence)
                    )
        with raw.cursor().copy(
            "COPY conversations_conversation (id, organization_id, owner_id, title, agent_type, status, "
            "message_count, metadata, usage, created_at, updated_at, activity_at) FROM STDIN"
        ) as copy:
            for conversation_id, org_id, owner_id, count in conversation_rows:
                copy.write_row(
                    (
                        conversation_id,
                        org_id,
                        owner_id,
                        "Bench",
                        "general",
                        "active",
                        count,
                        "{}",
                        '{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}',
                        now,
                        now,
                        now,
                    )
                )
        with raw.cursor().copy(
            "COPY conversations_message (id, conversation_id, organization_id, owner_id, role, content, metadata, "
            "sequence, created_at) FROM STDIN"
        ) as copy:
            for message_id, conversation_id, org_id, owner_id, sequence in message_rows:
                copy.write_row(
                    (message_id, conversation_id, org_id, owner_id, "user", "synthetic", "{}", sequence, now)
                )
        vectors = clustered(rng, centers, len(message_rows)).astype(np.float32)
        with raw.cursor().copy(
            "COPY search_messageembedding (id, message_id, conversation_id, organization_id, owner_id, model, "
            "dimensions, embedding, text_sha256, created_at, updated_at) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                [
                    "uuid",
                    "uuid",
                    "uuid",
                    "uuid",
                    "uuid",
                    "varchar",
                    "int2",
                    "vector",
                    "varchar",
                    "timestamptz",
                    "timestamptz",
                ]
            )
            for (message_id, conversation_id, org_id, owner_id, _), vector in zip(message_rows, vectors, strict=True):
                copy.write_row(
                    (
                        uuid.uuid4(),
                        message_id,
                        conversation_id,
                        org_id,
                        owner_id,
                        MODEL,
                        DIMS,
                        vector,
                        "0" * 64,
                        now,
                        now,
                    )
                )
        cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute("ANALYZE search_messageembedding")
    print(f"loaded {len(message_rows):,} vectors in {time.perf_counter() - started:.1f}s", flush=True)
    return {"tenants": tenants, "centers": centers}


def build_index() -> float:
    from django.db import connection

    from search.vector_index import create_index_sql, index_name

    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {index_name(MODEL)}")
        # The whole graph must fit (1M 384-d vectors need ~2 GB): past it the build slows
        # down by an order of magnitude.
        cursor.execute("SET maintenance_work_mem = '4GB'")
        started = time.perf_counter()
        cursor.execute(create_index_sql(MODEL, DIMS, concurrently=False))
        elapsed = time.perf_counter() - started
        cursor.execute("ANALYZE search_messageembedding")
    print(f"HNSW index built in {elapsed:.1f}s", flush=True)
    return elapsed


def run_query(sql: str, params: list, settings: list[str]) -> tuple[list, float]:
    from django.db import connection, transaction

    connection.ensure_connection()
    if not getattr(connection.connection, "_vector_registered", False):
        from pgvector.psycopg import register_vector

        register_vector(connection.connection)
        connection.connection._vector_registered = True
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in settings:
            cursor.execute(statement)
        started = time.perf_counter()
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        return rows, (time.perf_counter() - started) * 1000


SCOPED = (
    "SELECT message_id FROM search_messageembedding WHERE model = %s AND organization_id = %s AND owner_id = %s "
    "ORDER BY {order} LIMIT 10"
)
CONVERSATION = (
    "SELECT message_id FROM search_messageembedding WHERE model = %s AND conversation_id = %s "
    "ORDER BY embedding <=> %s LIMIT 10"
)
UNSCOPED = "SELECT message_id FROM search_messageembedding WHERE model = %s ORDER BY {order} LIMIT 10"
EXACT_ORDER = "embedding <=> %s"
INDEX_ORDER = f"embedding::vector({DIMS}) <=> %s"


BINARY_INDEX = "bench_embedding_binary_hnsw"
BINARY_EXPRESSION = f"binary_quantize(embedding::vector({DIMS}))::bit({DIMS})"
BINARY_RERANK = (
    "SELECT message_id FROM (SELECT message_id, embedding FROM search_messageembedding "
    "WHERE model = %s AND organization_id = %s AND owner_id = %s "
    f"ORDER BY {BINARY_EXPRESSION} <~> binary_quantize(%s::vector({DIMS}))::bit({DIMS}) LIMIT {{pool}}) pool "
    "ORDER BY embedding <=> %s LIMIT 10"
)
PREVIOUS_PLAN = (200, 50_000)
# (ef_search, max_scan_tuples) of the shared index's iterative scans; binary pools; tenant ef.
ITERATIVE_GRID = [(100, 20_000), (200, 50_000), (400, 100_000), (800, 200_000), (1000, 400_000)]
BINARY_POOLS = [100, 200, 400, 800]
TENANT_EF = [40, 64, 100, 200, 400, 800]


def iterative(ef: int, max_scan: int = 100_000) -> list[str]:
    return [
        f"SET LOCAL hnsw.ef_search = {ef}",
        "SET LOCAL hnsw.iterative_scan = relaxed_order",
        f"SET LOCAL hnsw.max_scan_tuples = {max_scan}",
        "SET LOCAL enable_sort = off",
    ]


def runner(sql: str, params: list, settings: list[str] | None = None):
    """Runs `sql` for one query vector (appended to `params`)."""
    return lambda vector: run_query(sql, [*params, vector], settings or [])


def recall(found: list, truth: list) -> float:
    return len({row[0] for row in found} & {row[0] for row in truth}) / max(1, len(truth))


def measure(name: str, queries, run, truths) -> dict:
    latencies, recalls, fewest = [], [], 10
    for vector, truth in zip(queries, truths, strict=True):
        rows, ms = run(vector)
        latencies.append(ms)
        recalls.append(recall(rows, truth))
        fewest = min(fewest, len(rows))
    stats = percentiles(latencies)
    return {
        "plan": name,
        "p50_ms": stats["p50_ms"],
        "p95_ms": stats["p95_ms"],
        "recall_at_10": round(float(np.mean(recalls)), 3),
        "fewest_rows": fewest,
    }


def app_plan(tenant: dict):
    from accounts.models import Organization, User
    from search.selectors import choose_plan, semantic_search

    user, organization = User.objects.get(id=tenant["owner"]), Organization.objects.get(id=tenant["organization"])
    plan = choose_plan(user=user, organization=organization, model=MODEL)

    def run(vector):
        started = time.perf_counter()
        hits = semantic_search(
            user=user, organization=organization, query_vector=vector.tolist(), model=MODEL, limit=10
        )
        return [(hit.message_id,) for hit in hits], (time.perf_counter() - started) * 1000

    return plan, run


def build_binary_index() -> float | None:
    """Candidate (b): the whole model's vectors, binary-quantized, in one HNSW index (built
    once; None when it exists already)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [BINARY_INDEX])
        if cursor.fetchone():
            return None
        cursor.execute("SET maintenance_work_mem = '2GB'")
        started = time.perf_counter()
        cursor.execute(
            f"CREATE INDEX {BINARY_INDEX} ON search_messageembedding USING hnsw (({BINARY_EXPRESSION}) "
            f"bit_hamming_ops) WITH (m = 16, ef_construction = 64) WHERE model = '{MODEL}'"
        )
        elapsed = time.perf_counter() - started
        cursor.execute("ANALYZE search_messageembedding")
    print(f"binary-quantized HNSW index built in {elapsed:.1f}s", flush=True)
    return elapsed


def build_tenant_indexes(tenants: list[dict], rows: int, *, concurrently: bool = True) -> dict:
    """Candidate (a), as the product builds it: the embedding job's build
    (search.tenant_indexes.unscoped_index_build: claimed, CONCURRENTLY) for every tenant
    above SEARCH_TENANT_INDEX_MIN_ROWS. Seconds per index built now. `concurrently=False`
    builds inside a transaction instead (the same index; it can run beside another
    process's plain CREATE INDEX on the table, which a CONCURRENTLY build would wait for)."""
    from django.conf import settings
    from django.db import connection, transaction

    from search import tenant_indexes

    built = {}
    # The whole graph in memory, as for the shared index (a 300k-row graph needs ~0.6 GB).
    settings.SEARCH_TENANT_INDEX_BUILD_MEMORY_MB = 2048
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '2GB'")
    # The named buckets' tenants only: the product would index every tenant above the
    # threshold, but only these are measured (and each build takes minutes at 1M).
    named = {max(1, int(rows * share)) for _, share in SCOPES}
    for tenant in sorted(tenants, key=lambda t: -t["size"]):
        if tenant["size"] <= settings.SEARCH_TENANT_INDEX_MIN_ROWS:
            break
        if tenant["size"] not in named:
            continue
        scope = (tenant["organization"], tenant["owner"])
        started = time.perf_counter()
        with transaction.atomic(durable=False) if not concurrently else contextlib.nullcontext():
            outcome = tenant_indexes.unscoped_index_build(
                table=tenant_indexes.MESSAGE_VECTORS, model=MODEL, dimensions=DIMS, scope=scope
            )
        if outcome == tenant_indexes.CREATED:
            built[tenant["size"]] = round(time.perf_counter() - started, 1)
            print(f"tenant index for {tenant['size']:,} rows built in {built[tenant['size']]}s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE search_messageembedding")
    tenant_indexes.forget_cache()
    return built


def tenant_index_names() -> list[str]:
    from search.models import TenantVectorIndex

    return list(TenantVectorIndex.objects.values_list("name", flat=True))


@contextmanager
def hidden_indexes(names: list[str]):
    """The statements run inside see the table without these indexes (DROP INDEX in a
    transaction rolled back at the end: nothing is rebuilt)."""
    from django.db import connection, transaction

    with transaction.atomic():
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(f"DROP INDEX {name}")
        yield
        transaction.set_rollback(True)


def index_used(sql: str, params: list, settings: list[str]) -> str:
    """The name of the index the plan of `sql` scans (its first Index Scan), or "none"."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        for statement in settings:
            cursor.execute(statement)
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
        plan = plan if isinstance(plan, list) else json.loads(plan)

    def walk(node):
        if "Index Name" in node:
            return node["Index Name"]
        for child in node.get("Plans", []):
            found = walk(child)
            if found:
                return found
        return None

    name = walk(plan[0]["Plan"]) or "none"
    return name if not name.startswith("tenant_hnsw_") else "tenant index"


CANDIDATES = ("exact", "planner", "shared", "binary", "tenant", "app")


def candidate_rows(data: dict, queries, rows: int, *, candidates=CANDIDATES) -> tuple[list[dict], list[dict]]:
    """Every candidate for every bucket, recall against exact search. Returns the table rows
    and the sweep points for the plots. The sweeps run for the buckets above
    SEARCH_EXACT_MAX_ROWS; below it (where exact search is the plan) one point of each
    index candidate shows why not: a filtered scan of the shared indexes has to walk past
    every other tenant's rows."""
    from django.conf import settings as django_settings

    from search.tenant_indexes import MESSAGE_VECTORS, index_name

    table, points = [], []
    tenant_names = tenant_index_names()
    for label, share in SCOPES:
        tenant = next(t for t in data["tenants"] if t["size"] == max(1, int(rows * share)))
        large = tenant["size"] > django_settings.SEARCH_EXACT_MAX_ROWS
        own_index = index_name(table=MESSAGE_VECTORS, model=MODEL, scope=(tenant["organization"], tenant["owner"]))
        scope = f"{label} ({tenant['size']:,} rows)"
        params = [MODEL, tenant["organization"], tenant["owner"]]
        truths = [runner(SCOPED.format(order=EXACT_ORDER), params)(q)[0] for q in queries]

        def add(candidate, name, run, knob=None, index=None, scope=scope, truths=truths, label=label):
            result = measure(name, queries, run, truths)
            print(
                f"{scope}: {name}: p50 {result['p50_ms']} p95 {result['p95_ms']} ms, "
                f"recall {result['recall_at_10']}, fewest rows {result['fewest_rows']}",
                flush=True,
            )
            table.append({"scope": scope, "candidate": candidate, **result, **({"index": index} if index else {})})
            points.append({"bucket": label, "candidate": candidate, "knob": knob, **result})
            return result

        index_candidates(
            add, params, queries, large=large, tenant_names=tenant_names, own_index=own_index, candidates=candidates
        )
        if "binary" in candidates:
            binary_candidates(add, params, queries, large=large)
        if "app" in candidates:
            plan, run = app_plan(tenant)
            add("RaptorFlow plan", f"RaptorFlow plan ({plan}), selector end to end", run)
    return table, points


def index_candidates(add, params, queries, *, large: bool, tenant_names: list[str], own_index: str, candidates) -> None:
    """Exact, the planner alone, (c) the shared index with iterative scans (tenant indexes
    hidden), (a) the tenant's own index when it has one."""
    exact_sql, index_sql = SCOPED.format(order=EXACT_ORDER), SCOPED.format(order=INDEX_ORDER)
    if "exact" in candidates:
        add("exact", "exact", runner(exact_sql, params))
    # Hiding takes a lock on the table: only when the shared index is measured.
    with hidden_indexes(tenant_names) if {"planner", "shared"} & set(candidates) else contextlib.nullcontext():
        if "planner" in candidates:
            add(
                "planner alone",
                "planner alone (shared HNSW, ef 40)",
                runner(index_sql, params),
                index=index_used(index_sql, [*params, queries[0]], []),
            )
        grid = (ITERATIVE_GRID if large else [PREVIOUS_PLAN]) if "shared" in candidates else []
        for ef, max_scan in grid:
            settings = iterative(ef, max_scan)
            name = f"shared HNSW iterative, ef {ef}, scan cap {max_scan:,}"
            if (ef, max_scan) == PREVIOUS_PLAN:
                name += " (the previous plan above 10k rows)"
            add(
                "(c) shared HNSW, iterative",
                name,
                runner(index_sql, params, settings),
                knob=ef,
                index=index_used(index_sql, [*params, queries[0]], settings),
            )
    if own_index in tenant_names and "tenant" in candidates:
        for ef in TENANT_EF:
            settings = iterative(ef, 50_000)
            add(
                "(a) tenant partial HNSW",
                f"tenant HNSW, ef {ef}",
                runner(index_sql, params, settings),
                knob=ef,
                index=index_used(index_sql, [*params, queries[0]], settings),
            )


def binary_candidates(add, params, queries, *, large: bool) -> None:
    """(b) the binary-quantized index scanned for a pool, re-ranked exactly."""
    for pool in BINARY_POOLS if large else BINARY_POOLS[1:2]:
        sql = BINARY_RERANK.format(pool=pool)
        settings = iterative(pool, max(20_000, pool * 100))
        add(
            "(b) binary quantized + re-rank",
            f"binary HNSW, pool {pool}, re-ranked",
            lambda vector, sql=sql, settings=settings, params=params: run_query(
                sql, [*params, vector, vector], settings
            ),
            knob=pool,
            index=index_used(sql, [*params, queries[0], queries[0]], settings),
        )


def _statements_of(call) -> list[tuple[str, list]]:
    """The (sql, params) of every statement `call()` sends."""
    from django.db import connection

    seen = []

    def record(execute, sql, params, many, context):
        seen.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        call()
    return seen


def _split(statements) -> list[tuple[str, list]]:
    """Statements sent together in one message (an index plan's scan settings, ranking and
    reset) as separate (sql, params), their parameters split by placeholder."""
    out = []
    for sql, params in statements:
        params = list(params or [])
        for part in sql.split("; "):
            count = part.count("%s")
            out.append((part, params[:count]))
            params = params[count:]
    return out


def _database_ms(statements) -> float:
    """Planning + execution time inside the server of `statements` run in order (the HNSW
    settings ones as they are, the others under EXPLAIN ANALYZE)."""
    from django.db import connection

    total = 0.0
    with connection.cursor() as cursor:
        for sql, params in _split(statements):
            if "set_config" in sql:
                cursor.execute(sql, params)
                continue
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            plan = cursor.fetchone()[0]
            plan = plan[0] if isinstance(plan, list) else json.loads(plan)[0]
            total += plan["Planning Time"] + plan["Execution Time"]
    return total


def _bare_ms(statements) -> float:
    """The same statements from Python on a bare psycopg cursor (client-side binding, as
    Django sends them), rows fetched."""
    import psycopg
    from django.db import connection

    raw = connection.connection
    started = time.perf_counter()
    with psycopg.ClientCursor(raw) as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)
            while True:
                if cursor.description is not None:
                    cursor.fetchall()
                if not cursor.nextset():
                    break
    return (time.perf_counter() - started) * 1000


def selector_overhead(label: str, queries, *, tenant: dict, conversation_ids=None) -> dict:
    """semantic_search against the statements it runs, query by query, all three timed in
    turn so that they share the machine's noise."""
    from accounts.models import Organization, User
    from search.selectors import choose_plan, semantic_search

    user, organization = User.objects.get(id=tenant["owner"]), Organization.objects.get(id=tenant["organization"])
    conversation_ids = conversation_ids or [None] * len(queries)
    plan = choose_plan(user=user, organization=organization, model=MODEL, conversation_id=conversation_ids[0])
    database, bare, selector, statement_counts = [], [], [], set()
    for round_ in range(2):  # the first round warms caches and is not counted
        for vector, conversation_id in zip(queries, conversation_ids, strict=True):
            query_vector = vector.tolist()

            def call(query_vector=query_vector, conversation_id=conversation_id):
                return semantic_search(
                    user=user,
                    organization=organization,
                    query_vector=query_vector,
                    model=MODEL,
                    limit=10,
                    conversation_id=conversation_id,
                )

            statements = _statements_of(call)
            statement_counts.add(len(statements))
            db_ms = _database_ms(statements)
            bare_ms = _bare_ms(statements)
            started = time.perf_counter()
            call()
            selector_ms = (time.perf_counter() - started) * 1000
            if round_:
                database.append(db_ms)
                bare.append(bare_ms)
                selector.append(selector_ms)
    db, cur, sel = percentiles(database), percentiles(bare), percentiles(selector)
    return {
        "scope": label,
        "plan": plan,
        "statements": "/".join(map(str, sorted(statement_counts))),
        "db_p50_ms": round(db["p50_ms"], 2),
        "db_p95_ms": round(db["p95_ms"], 2),
        "cursor_p50_ms": cur["p50_ms"],
        "cursor_p95_ms": cur["p95_ms"],
        "selector_p50_ms": sel["p50_ms"],
        "selector_p95_ms": sel["p95_ms"],
        "ratio_p50": round(sel["p50_ms"] / db["p50_ms"], 2),
        "ratio_p95": round(sel["p95_ms"] / db["p95_ms"], 2),
        "overhead_p50_ms": round(sel["p50_ms"] - db["p50_ms"], 2),
        "within_target_p50": sel["p50_ms"] <= 1.2 * db["p50_ms"] + 1.0,
    }


def overhead_rows(data: dict, queries, rows: int) -> list[dict]:
    out = []
    for label, share in SCOPES:
        tenant = next(t for t in data["tenants"] if t["size"] == max(1, int(rows * share)))
        out.append(selector_overhead(f"user with {label} ({tenant['size']:,} rows)", queries, tenant=tenant))
    tenant = max(data["tenants"], key=lambda t: t["size"])
    conversations = (tenant["conversations"] * len(queries))[: len(queries)]
    out.append(
        selector_overhead(
            f"one conversation ({MESSAGES_PER_CONVERSATION} rows)",
            queries,
            tenant=tenant,
            conversation_ids=conversations,
        )
    )
    print_table(
        f"Selector overhead over {rows:,} vectors ({len(queries)} queries per row; ms)",
        out,
        [
            "scope",
            "plan",
            "statements",
            "db_p50_ms",
            "db_p95_ms",
            "cursor_p50_ms",
            "cursor_p95_ms",
            "selector_p50_ms",
            "selector_p95_ms",
            "ratio_p50",
            "ratio_p95",
            "within_target_p50",
        ],
    )
    write_results(
        f"vectors_{rows}_selector",
        {"rows": rows, "queries": len(queries), "target": "selector p50 <= 1.2 x database p50 + 1 ms", "results": out},
    )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="reuse the data and index of a previous run")
    parser.add_argument("--load-only", action="store_true", help="load the data and build the index, then stop")
    parser.add_argument(
        "--overhead-only", action="store_true", help="measure only the selector against the statements it runs"
    )
    parser.add_argument(
        "--candidates",
        default=",".join(CANDIDATES),
        help=f"which to measure, of {','.join(CANDIDATES)} (default: all; builds only the indexes they need)",
    )
    parser.add_argument(
        "--tenant-ef", help="ef_search values of candidate (a), comma-separated (default: 40,64,100,200,400,800)"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --reuse: add these candidates to the results and plot of a previous run (indexes built later)",
    )
    parser.add_argument(
        "--build",
        choices=["binary", "tenants"],
        help="with --reuse: only build this candidate's indexes (beside another build of the table), then stop",
    )
    args = parser.parse_args()
    candidates = set(args.candidates.split(","))
    if args.tenant_ef:
        TENANT_EF[:] = [int(value) for value in args.tenant_ef.split(",")]
    if candidates - set(CANDIDATES):
        parser.error(f"unknown candidates: {', '.join(sorted(candidates - set(CANDIDATES)))}")

    database = f"raptorflow_bench_vectors_{args.rows}"
    setup_django(database)
    from django.db import connection

    from search.vector_index import index_exists

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM search_messageembedding")
        present = cursor.fetchone()[0]
    if args.build:
        tenants = _tenants_from_db()
        seconds = (
            build_binary_index()
            if args.build == "binary"
            else build_tenant_indexes(tenants, args.rows, concurrently=False)
        )
        write_results(f"vectors_{args.rows}_build_{args.build}", {"rows": args.rows, "seconds": seconds})
        return
    if args.reuse and present == args.rows:
        print(f"reusing {present:,} vectors", flush=True)
        # The same seed gives the same cluster centres as the run that loaded the data.
        centers = unit(np.random.default_rng(args.seed).normal(size=(200, DIMS)))
        data = {"tenants": _tenants_from_db(), "centers": centers}
        build_seconds = None
        if not index_exists(MODEL) and ({"planner", "shared"} & candidates or args.load_only):
            build_seconds = build_index()
            write_results(f"vectors_{args.rows}_build", {"rows": args.rows, "index_build_seconds": build_seconds})
        if args.load_only:
            return
    else:
        data = load(args.rows, args.seed)
        build_seconds = build_index()
        write_results(f"vectors_{args.rows}_build", {"rows": args.rows, "index_build_seconds": build_seconds})
        if args.load_only:
            return

    rng = np.random.default_rng(args.seed + 1)
    queries = clustered(rng, data["centers"], args.queries).astype(np.float32)
    if args.overhead_only:
        overhead_rows(data, queries, args.rows)
        return
    builds = {
        "binary_index_seconds": build_binary_index() if "binary" in candidates else None,
        "tenant_index_seconds": build_tenant_indexes(data["tenants"], args.rows) if "tenant" in candidates else None,
    }
    if args.merge:
        merge_results(data, queries, args.rows, candidates, builds)
        return
    rows_out, points = candidate_rows(data, queries, args.rows, candidates=candidates)
    sweep = []

    # Conversation scope: always exact in RaptorFlow.
    tenant = max(data["tenants"], key=lambda t: t["size"])
    conversations = tenant["conversations"][: args.queries]
    truths = [run_query(CONVERSATION, [MODEL, c, q], [])[0] for c, q in zip(conversations, queries, strict=False)]
    pairs = list(zip(conversations, queries, strict=False))
    latencies = [run_query(CONVERSATION, [MODEL, c, q], [])[1] for c, q in pairs]
    stats = percentiles(latencies)
    rows_out.append(
        {
            "scope": f"one conversation ({MESSAGES_PER_CONVERSATION} rows)",
            "candidate": "exact",
            "plan": "exact",
            "p50_ms": stats["p50_ms"],
            "p95_ms": stats["p95_ms"],
            "recall_at_10": 1.0,
            "fewest_rows": min(len(t) for t in truths),
        }
    )

    # Whole table, unscoped: the classic ANN trade-off.
    exact_unscoped = runner(UNSCOPED.format(order=EXACT_ORDER), [MODEL])
    truths = [exact_unscoped(q)[0] for q in queries] if "shared" in candidates else []
    if truths:
        whole = measure("exact", queries, exact_unscoped, truths)
        rows_out.append({"scope": "whole table", "candidate": "exact", **whole})
    for ef in EF_VALUES if truths else []:
        index_unscoped = runner(UNSCOPED.format(order=INDEX_ORDER), [MODEL], [f"SET LOCAL hnsw.ef_search = {ef}"])
        result = measure(f"HNSW, ef {ef}", queries, index_unscoped, truths)
        rows_out.append({"scope": "whole table", "candidate": "shared HNSW", **result})
        sweep.append({"scope": "whole table", "ef_search": ef, **result})

    print_table(
        f"Top-10 vector search over {args.rows:,} vectors ({args.queries} queries per row)",
        rows_out,
        ["scope", "plan", "p50_ms", "p95_ms", "recall_at_10", "fewest_rows", "index"],
    )
    plot(points, args.rows)
    payload = {
        "rows": args.rows,
        "organizations": ORGS,
        "dimensions": DIMS,
        "queries": args.queries,
        "candidates": sorted(candidates),
        "candidate_index_build_seconds": builds,
        "target": "every bucket: recall@10 >= 0.95, p95 <= 15 ms, k rows",
        "results": rows_out,
        "points": points,
        "ef_sweep": sweep,
    }
    # Written before the overhead part (minutes more at 1M), and again with it.
    write_results(f"vectors_{args.rows}", payload)
    overhead = overhead_rows(data, queries, args.rows)
    if build_seconds is None:
        build_file = ROOT / "bench" / "results" / f"vectors_{args.rows}_build.json"
        build_seconds = json.loads(build_file.read_text())["index_build_seconds"] if build_file.exists() else None
    write_results(
        f"vectors_{args.rows}",
        {**payload, "index_build_seconds": build_seconds, "selector_overhead": overhead},
    )


def merge_results(data: dict, queries, rows: int, candidates: set, builds: dict) -> None:
    """Candidates measured in a later run (their index was still building when the others
    ran) added to vectors_<rows>.json, whose plot is drawn again."""
    table, points = candidate_rows(data, queries, rows, candidates=candidates)
    path = ROOT / "bench" / "results" / f"vectors_{rows}.json"
    results = json.loads(path.read_text())
    results["results"] += table
    results["points"] += points
    results.setdefault("measured_later", []).append(sorted(candidates))
    for key, value in builds.items():
        if value:
            results["candidate_index_build_seconds"][key] = value
    results.pop("machine", None)
    plot(results["points"], rows)
    write_results(f"vectors_{rows}", results)


def _tenants_from_db() -> list[dict]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT organization_id, owner_id, count(*), array_agg(DISTINCT conversation_id) "
            "FROM search_messageembedding GROUP BY organization_id, owner_id"
        )
        return [
            {"organization": org, "owner": owner, "size": size, "conversations": list(conversations)}
            for org, owner, size, conversations in cursor.fetchall()
        ]


def plot(points: list[dict], rows: int) -> None:
    """One panel per bucket: recall@10 against p95 latency of every candidate (a line per
    family, labelled with its knob: ef_search or the re-ranked pool), the target shaded."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install -r bench/requirements.txt): no plot")
        return
    buckets = list(dict.fromkeys(point["bucket"] for point in points))
    figure, axes = plt.subplots(2, (len(buckets) + 1) // 2, figsize=(11, 8), squeeze=False)
    markers = {"exact": "*", "planner alone": "x", "RaptorFlow plan": "D"}
    colors = {
        "exact": "tab:blue",
        "planner alone": "tab:red",
        "RaptorFlow plan": "tab:green",
        "(c) shared HNSW, iterative": "tab:purple",
        "(b) binary quantized + re-rank": "tab:brown",
        "(a) tenant partial HNSW": "tab:orange",
    }
    for axis, bucket in zip(axes.flat, buckets, strict=False):
        mine = [point for point in points if point["bucket"] == bucket]
        axis.axvspan(0.1, 15, ymin=(0.95 - 0.0) / 1.05, ymax=1, color="green", alpha=0.08, label="target")
        for candidate in dict.fromkeys(point["candidate"] for point in mine):
            line = [point for point in mine if point["candidate"] == candidate]
            xs, ys = [max(0.1, p["p95_ms"]) for p in line], [p["recall_at_10"] for p in line]
            if candidate in markers:
                axis.scatter(
                    xs, ys, marker=markers[candidate], s=70, label=candidate, zorder=3, color=colors[candidate]
                )
                continue
            drawn = axis.plot(xs, ys, marker="o", markersize=3, label=candidate, color=colors.get(candidate))[0]
            for point, x, y in zip(line, xs, ys, strict=True):
                axis.annotate(
                    str(point["knob"]),
                    (x, y),
                    fontsize=6,
                    xytext=(2, 3),
                    textcoords="offset points",
                    color=drawn.get_color(),
                )
        axis.set_xscale("log")
        axis.set_ylim(0, 1.05)
        axis.set_title(f"user holding {bucket}", fontsize=9)
        axis.set_xlabel("p95 ms (log)", fontsize=8)
        axis.set_ylabel("recall@10", fontsize=8)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=6, loc="lower left")
    figure.suptitle(f"Top-10 recall vs p95 latency per bucket, {rows:,} vectors (384-d); labels: ef_search / pool")
    out = ROOT / "docs" / f"vector-recall-latency-{rows}.png"
    out.parent.mkdir(exist_ok=True)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    print(f"plot written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
