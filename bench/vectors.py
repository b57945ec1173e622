"""Vector search benchmark: synthetic 384-d embeddings over 1,000 organizations of skewed
sizes, in the real search_messageembedding table with the real per-model HNSW index.

    .venv/bin/python bench/vectors.py            # 100k vectors
    .venv/bin/python bench/vectors.py --rows 1000000 --reuse   # 1M (index build takes minutes)

Reports the HNSW build time, then for three scope sizes (one user holding 10%, 1% and 0.1%
of all rows) and for conversation scope: top-10 latency (p50/p95, database round trip on
the local socket) and recall@10 against exact search, for
- the planner left alone (HNSW index, default ef_search, no iterative scan),
- HNSW with iterative scans at several ef_search values,
- exact search,
- RaptorFlow's own plan (search.selectors.semantic_search, which chooses exact or HNSW).
Then the selector's overhead, per scope, side by side for each query: the statements
semantic_search runs timed inside the database (EXPLAIN ANALYZE planning + execution), the
same statements with the same parameters from Python on a bare psycopg cursor, and
semantic_search end to end (query vector given, no embedding); p50/p95 and the ratio
selector / database (`--overhead-only` runs just this part).
It also sweeps ef_search over the whole table (unscoped) and plots recall@10 against
latency, scoped and unscoped, to docs/vector-recall-latency.png."""

import argparse
import json
import sys
import time
import uuid
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
SCOPES = [("10%", 0.10), ("1%", 0.01), ("0.1%", 0.001)]


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
                copy.write_row((tenant["owner"], "!", False, f"bench{index}@example.com", "", "", True, False,
                                tenant["organization"], now))
        conversation_rows, message_rows = [], []
        for tenant in tenants:
            tenant["conversations"] = []
            for start in range(0, tenant["size"], MESSAGES_PER_CONVERSATION):
                conversation_id = uuid.uuid4()
                count = min(MESSAGES_PER_CONVERSATION, tenant["size"] - start)
                tenant["conversations"].append(conversation_id)
                conversation_rows.append((conversation_id, tenant["organization"], tenant["owner"], count))
                for sequence in range(1, count + 1):
                    message_rows.append((uuid.uuid4(), conversation_id, tenant["organization"], tenant["owner"],
                                         sequence))
        with raw.cursor().copy(
            "COPY conversations_conversation (id, organization_id, owner_id, title, agent_type, status, "
            "message_count, metadata, usage, created_at, updated_at, activity_at) FROM STDIN"
        ) as copy:
            for conversation_id, org_id, owner_id, count in conversation_rows:
                copy.write_row((conversation_id, org_id, owner_id, "Bench", "general", "active", count, "{}",
                                '{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}', now, now, now))
        with raw.cursor().copy(
            "COPY conversations_message (id, conversation_id, organization_id, owner_id, role, content, metadata, "
            "sequence, created_at) FROM STDIN"
        ) as copy:
            for message_id, conversation_id, org_id, owner_id, sequence in message_rows:
                copy.write_row((message_id, conversation_id, org_id, owner_id, "user", "synthetic", "{}", sequence,
                                now))
        vectors = clustered(rng, centers, len(message_rows)).astype(np.float32)
        with raw.cursor().copy(
            "COPY search_messageembedding (id, message_id, conversation_id, organization_id, owner_id, model, "
            "dimensions, embedding, text_sha256, created_at, updated_at) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "uuid", "uuid", "uuid", "uuid", "varchar", "int2", "vector", "varchar",
                            "timestamptz", "timestamptz"])
            for (message_id, conversation_id, org_id, owner_id, _), vector in zip(message_rows, vectors, strict=True):
                copy.write_row((uuid.uuid4(), message_id, conversation_id, org_id, owner_id, MODEL, DIMS, vector,
                                "0" * 64, now, now))
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


def iterative(ef: int) -> list[str]:
    return [f"SET LOCAL hnsw.ef_search = {ef}", "SET LOCAL hnsw.iterative_scan = relaxed_order",
            "SET LOCAL hnsw.max_scan_tuples = 100000", "SET LOCAL enable_sort = off"]


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
    return {"plan": name, "p50_ms": stats["p50_ms"], "p95_ms": stats["p95_ms"],
            "recall_at_10": round(float(np.mean(recalls)), 3), "fewest_rows": fewest}


def app_plan(tenant: dict):
    from accounts.models import Organization, User
    from search.selectors import choose_plan, semantic_search

    user, organization = User.objects.get(id=tenant["owner"]), Organization.objects.get(id=tenant["organization"])
    plan = choose_plan(user=user, organization=organization, model=MODEL)

    def run(vector):
        started = time.perf_counter()
        hits = semantic_search(user=user, organization=organization, query_vector=vector.tolist(), model=MODEL,
                               limit=10)
        return [(hit.message_id,) for hit in hits], (time.perf_counter() - started) * 1000

    return plan, run


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


def _database_ms(statements) -> float:
    """Planning + execution time inside the server of `statements` run in order (the HNSW
    settings ones as they are, the others under EXPLAIN ANALYZE)."""
    from django.db import connection

    total = 0.0
    with connection.cursor() as cursor:
        for sql, params in statements:
            if "set_config" in sql:
                cursor.execute(sql, params)
                continue
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            plan = cursor.fetchone()[0]
            plan = plan[0] if isinstance(plan, list) else json.loads(plan)[0]
            total += plan["Planning Time"] + plan["Execution Time"]
    return total


def _bare_ms(statements) -> float:
    """The same statements from Python on a bare psycopg cursor, rows fetched."""
    from django.db import connection

    raw = connection.connection
    started = time.perf_counter()
    with raw.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)
            if cursor.description is not None:
                cursor.fetchall()
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
                return semantic_search(user=user, organization=organization, query_vector=query_vector, model=MODEL,
                                       limit=10, conversation_id=conversation_id)

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
    return {"scope": label, "plan": plan, "statements": "/".join(map(str, sorted(statement_counts))),
            "db_p50_ms": round(db["p50_ms"], 2), "db_p95_ms": round(db["p95_ms"], 2),
            "cursor_p50_ms": cur["p50_ms"], "cursor_p95_ms": cur["p95_ms"],
            "selector_p50_ms": sel["p50_ms"], "selector_p95_ms": sel["p95_ms"],
            "ratio_p50": round(sel["p50_ms"] / db["p50_ms"], 2), "ratio_p95": round(sel["p95_ms"] / db["p95_ms"], 2),
            "overhead_p50_ms": round(sel["p50_ms"] - db["p50_ms"], 2),
            "within_target_p50": sel["p50_ms"] <= 1.2 * db["p50_ms"] + 1.0}


def overhead_rows(data: dict, queries, rows: int) -> list[dict]:
    out = []
    for label, share in SCOPES:
        tenant = next(t for t in data["tenants"] if t["size"] == max(1, int(rows * share)))
        out.append(selector_overhead(f"user with {label} ({tenant['size']:,} rows)", queries, tenant=tenant))
    tenant = max(data["tenants"], key=lambda t: t["size"])
    conversations = (tenant["conversations"] * len(queries))[: len(queries)]
    out.append(selector_overhead(f"one conversation ({MESSAGES_PER_CONVERSATION} rows)", queries, tenant=tenant,
                                 conversation_ids=conversations))
    print_table(f"Selector overhead over {rows:,} vectors ({len(queries)} queries per row; ms)", out,
                ["scope", "plan", "statements", "db_p50_ms", "db_p95_ms", "cursor_p50_ms", "cursor_p95_ms",
                 "selector_p50_ms", "selector_p95_ms", "ratio_p50", "ratio_p95", "within_target_p50"])
    write_results(f"vectors_{rows}_selector", {"rows": rows, "queries": len(queries),
                                                "target": "selector p50 <= 1.2 x database p50 + 1 ms",
                                                "results": out})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="reuse the data and index of a previous run")
    parser.add_argument("--load-only", action="store_true", help="load the data and build the index, then stop")
    parser.add_argument("--overhead-only", action="store_true",
                        help="measure only the selector against the statements it runs")
    args = parser.parse_args()

    database = f"raptorflow_bench_vectors_{args.rows}"
    setup_django(database)
    from django.db import connection

    from search.vector_index import index_exists

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM search_messageembedding")
        present = cursor.fetchone()[0]
    if args.reuse and present == args.rows:
        print(f"reusing {present:,} vectors", flush=True)
        # The same seed gives the same cluster centres as the run that loaded the data.
        centers = unit(np.random.default_rng(args.seed).normal(size=(200, DIMS)))
        data = {"tenants": _tenants_from_db(), "centers": centers}
        build_seconds = None
        if not index_exists(MODEL):
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
    rows_out, sweep, planner = [], [], []

    for label, share in SCOPES:
        tenant = next(t for t in data["tenants"] if t["size"] == max(1, int(args.rows * share)))
        params = [MODEL, tenant["organization"], tenant["owner"]]
        exact_sql = SCOPED.format(order=EXACT_ORDER)
        index_sql = SCOPED.format(order=INDEX_ORDER)
        truths = [runner(exact_sql, params)(q)[0] for q in queries]
        results = [
            measure("exact", queries, runner(exact_sql, params), truths),
            measure("planner alone (HNSW, ef 40)", queries, runner(index_sql, params), truths),
        ]
        planner.append({"scope": f"user holding {label}", **results[-1]})
        for ef in EF_VALUES:
            result = measure(f"HNSW iterative, ef {ef}", queries, runner(index_sql, params, iterative(ef)), truths)
            results.append(result)
            sweep.append({"scope": f"user holding {label}", "ef_search": ef, **result})
        plan, run = app_plan(tenant)
        results.append(measure(f"RaptorFlow plan ({plan})", queries, run, truths))
        for result in results:
            rows_out.append({"scope": f"{label} ({tenant['size']:,} rows)", **result})

    # Conversation scope: always exact in RaptorFlow.
    tenant = max(data["tenants"], key=lambda t: t["size"])
    conversations = tenant["conversations"][: args.queries]
    truths = [run_query(CONVERSATION, [MODEL, c, q], [])[0] for c, q in zip(conversations, queries, strict=False)]
    pairs = list(zip(conversations, queries, strict=False))
    latencies = [run_query(CONVERSATION, [MODEL, c, q], [])[1] for c, q in pairs]
    stats = percentiles(latencies)
    rows_out.append({"scope": f"one conversation ({MESSAGES_PER_CONVERSATION} rows)", "plan": "exact",
                     "p50_ms": stats["p50_ms"], "p95_ms": stats["p95_ms"], "recall_at_10": 1.0,
                     "fewest_rows": min(len(t) for t in truths)})

    # Whole table, unscoped: the classic ANN trade-off.
    exact_unscoped = runner(UNSCOPED.format(order=EXACT_ORDER), [MODEL])
    truths = [exact_unscoped(q)[0] for q in queries]
    rows_out.append({"scope": "whole table", **measure("exact", queries, exact_unscoped, truths)})
    for ef in EF_VALUES:
        index_unscoped = runner(UNSCOPED.format(order=INDEX_ORDER), [MODEL], [f"SET LOCAL hnsw.ef_search = {ef}"])
        result = measure(f"HNSW, ef {ef}", queries, index_unscoped, truths)
        rows_out.append({"scope": "whole table", **result})
        sweep.append({"scope": "whole table", "ef_search": ef, **result})

    print_table(f"Top-10 vector search over {args.rows:,} vectors ({args.queries} queries per row)", rows_out,
                ["scope", "plan", "p50_ms", "p95_ms", "recall_at_10", "fewest_rows"])
    plot(sweep, planner, args.rows)
    overhead = overhead_rows(data, queries, args.rows)
    if build_seconds is None:
        build_file = ROOT / "bench" / "results" / f"vectors_{args.rows}_build.json"
        build_seconds = json.loads(build_file.read_text())["index_build_seconds"] if build_file.exists() else None
    write_results(f"vectors_{args.rows}", {"rows": args.rows, "organizations": ORGS, "dimensions": DIMS,
                                             "index_build_seconds": build_seconds, "results": rows_out,
                                             "ef_sweep": sweep, "selector_overhead": overhead})


def _tenants_from_db() -> list[dict]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT organization_id, owner_id, count(*), array_agg(DISTINCT conversation_id) "
            "FROM search_messageembedding GROUP BY organization_id, owner_id"
        )
        return [{"organization": org, "owner": owner, "size": size, "conversations": list(conversations)}
                for org, owner, size, conversations in cursor.fetchall()]


def plot(sweep: list[dict], planner: list[dict], rows: int) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install -r bench/requirements.txt): no plot")
        return
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for scope in dict.fromkeys(entry["scope"] for entry in sweep):
        points = [entry for entry in sweep if entry["scope"] == scope]
        line = axis.plot([p["p50_ms"] for p in points], [p["recall_at_10"] for p in points], marker="o",
                         label=f"{scope}: HNSW" + (", iterative scan" if scope != "whole table" else ""))[0]
        for point in points:
            axis.annotate(str(point["ef_search"]), (point["p50_ms"], point["recall_at_10"]), fontsize=7,
                          xytext=(2, 4), textcoords="offset points", color=line.get_color())
        alone = next((entry for entry in planner if entry["scope"] == scope), None)
        if alone:
            axis.scatter([alone["p50_ms"]], [alone["recall_at_10"]], marker="x", s=60, color=line.get_color(),
                         label=f"{scope}: planner alone")
    axis.set_xscale("log")
    axis.set_xlabel("p50 latency (ms, log scale); numbers are ef_search")
    axis.set_ylabel("recall@10")
    axis.set_title(f"Top-10 recall vs latency, {rows:,} vectors (384-d)")
    axis.set_ylim(0, 1.05)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="lower right")
    out = ROOT / "docs" / f"vector-recall-latency-{rows}.png"
    out.parent.mkdir(exist_ok=True)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    print(f"plot written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
