"""Embedded-default write benchmark: message create with the in-process embedding worker
running, side by side with embedding disabled, then a burst and how long it takes to drain.

    .venv/bin/python bench/embedded_writes.py [--clients 2 8] [--requests 150] [--rounds 2]
                                              [--burst 1000] [--server runserver|gunicorn]
                                              [--results embedded_writes]

`--rounds 0` measures the burst only, `--burst 0` the rounds only.

The server runs as scripts/serve.sh runs it (`manage.py runserver`, threaded, one process;
`--server gunicorn` for gunicorn 1 worker x 4 threads instead), on a database of its own
on the embedded PostgreSQL, recreated for each run.

- "embedding on": no broker (CELERY_BROKER_URL and REDIS_URL unset), so every stored
  message is embedded by the web process's own worker thread (raptorflow.jobs), with the
  local int8 model — the embedded default.
- "embedding off": CELERY_BROKER_URL points at a Redis database no worker reads, so the
  web process only publishes each job (as in production, where Celery workers run
  elsewhere) and never embeds; the queue is purged afterwards.

For each client count, rounds alternate the two modes (off/on, then on/off, ...), each on a
freshly started server after a warm-up, so the machine's noise hits both alike: the p95
ratio (on over off) is the figure to read. After an "on" round, the time the worker needed
to finish the round's backlog is recorded too. Then, with embedding on, a burst of
`--burst` messages from 8 clients; /metrics is read every half second until
`raptorflow_background_backlog{backlog="embeddings"}` is back to zero, and the database is
checked: every message of the burst has exactly one vector of the active model.

The load average (1 minute) is recorded at the start and end of each round: the machine's
two cores are shared with the load generator, PostgreSQL and, often, other work.
Results: bench/results/embedded_writes.json.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    PYTHON,
    ROOT,
    bench_database_url,
    free_port,
    gunicorn,
    issue_tokens,
    percentiles,
    print_table,
    wait_for_http,
    write_results,
)

DATABASE = "raptorflow_bench_embedded_writes"
OFF_BROKER = "redis://127.0.0.1:6379/13"
TOPICS = [
    "the Q4 product launch",
    "paid social spend next quarter",
    "subject lines for the holiday email campaign",
    "qualified leads by channel last month",
    "the competitor's pricing changes",
    "the November webinar calendar",
    "influencer partnerships for spring",
    "churn among trial users",
]


def _content(client: int, i: int) -> str:
    """A distinct chat-like message of 12-40 words."""
    topic = TOPICS[(client + i) % len(TOPICS)]
    extra = " ".join(["Please include the numbers from the last review and a short rationale."] * (i % 3))
    return f"Message {client}-{i}: what should we change about {topic}, and who owns the next step? {extra}".strip()


def _client(args):
    """One client process: sequential keep-alive message creates; latencies in ms."""
    port, token, conversation, client, start_index, count = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    samples, errors = [], 0
    for i in range(start_index, start_index + count):
        body = json.dumps({"role": "user", "content": _content(client, i)}).encode()
        started = time.perf_counter()
        try:
            conn.request("POST", f"/api/conversations/{conversation}/messages", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            status = 0
        samples.append((time.perf_counter() - started) * 1000)
        if not 200 <= status < 300:
            errors += 1
    conn.close()
    return samples, errors


def _request(port, method, path, token=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    return response.status, raw


def _backlog(port) -> tuple[float, float]:
    """(embedding backlog, in-process queue depth) as /metrics shows them."""
    from prometheus_client.parser import text_string_to_metric_families

    _, raw = _request(port, "GET", "/metrics")
    backlog = depth = 0.0
    for family in text_string_to_metric_families(raw.decode()):
        for sample in family.samples:
            if sample.name == "raptorflow_background_backlog" and sample.labels.get("backlog") == "embeddings":
                backlog = sample.value
            elif sample.name == "raptorflow_background_queue_depth" and sample.labels.get("queue") == "in_process":
                depth = sample.value
    return backlog, depth


def _wait_drained(port, started: float, timeout: float = 1800.0, trace: list | None = None) -> float:
    """Seconds from `started` until the embedding backlog at /metrics is zero."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        backlog, depth = _backlog(port)
        if trace is not None:
            trace.append({"t": round(time.monotonic() - started, 2), "backlog": int(backlog), "queue": int(depth)})
        if backlog == 0:
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit("the embedding backlog did not drain in time")


def _loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def _recreate_database() -> str:
    import psycopg

    url = bench_database_url(DATABASE)
    maintenance = url.replace(f"/{DATABASE}?", "/postgres?", 1)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    return url


def _env(database_url: str, *, embedding: bool) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "HF_HUB_OFFLINE": "1",
        "RATE_LIMIT_USER": "1000000/min",
        "LOG_LEVEL": "WARNING",
        "EMBEDDING_PROVIDER": "local",
        # A run on a busy machine outlasts the default 15 minutes of an access token.
        "JWT_ACCESS_MINUTES": "240",
    }
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "BACKGROUND_JOBS_EAGER", "METRICS_TOKEN", "DEBUG"):
        env.pop(name, None)
    if not embedding:
        env["CELERY_BROKER_URL"] = OFF_BROKER
    return env


@contextmanager
def runserver(env: dict, log_path: Path):
    """`manage.py runserver` as scripts/serve.sh starts it (threaded), without the reloader."""
    port = free_port()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            # System checks are a start-up cost only; on a loaded machine they take a while.
            [PYTHON, "manage.py", "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        try:
            wait_for_http(port, timeout=300)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _server(kind: str, env: dict, log_path: Path):
    if kind == "gunicorn":
        return gunicorn(env, workers=1, threads=4, log_path=log_path)
    return runserver(env, log_path)


def _conversations(port, tokens) -> list[str]:
    ids = []
    for token in tokens:
        status, raw = _request(port, "POST", "/api/conversations", token, {"title": "Bench", "agent_type": "strategy"})
        assert status == 201, raw
        ids.append(json.loads(raw)["id"])
    return ids


def _delete(port, tokens, conversations) -> None:
    for token, conversation in zip(tokens, conversations, strict=True):
        _request(port, "DELETE", f"/api/conversations/{conversation}", token)


def _run_load(pool, port, tokens, conversations, per_client, start_index=0):
    jobs = [(port, tokens[c], conversations[c], c, start_index, per_client) for c in range(len(tokens))]
    started = time.perf_counter()
    results = pool.map(_client, jobs)
    elapsed = time.perf_counter() - started
    samples = [s for client_samples, _ in results for s in client_samples]
    errors = sum(e for _, e in results)
    return {**percentiles(samples), "rps": round(len(samples) / elapsed, 1), "errors": errors}


def measure_round(args, url, tokens, clients, embedding, log_path) -> dict:
    env = _env(url, embedding=embedding)
    with _server(args.server, env, log_path) as port:
        conversations = _conversations(port, tokens[:clients])
        with multiprocessing.Pool(clients) as pool:
            # Warm-up: connections, the model in the worker (embedding on), Python's caches.
            _run_load(pool, port, tokens[:clients], conversations, 10, start_index=100_000)
            if embedding:
                _wait_drained(port, time.monotonic())
            load_before = _loadavg()
            row = _run_load(pool, port, tokens[:clients], conversations, args.requests)
            load_after = _loadavg()
        row.update(
            {"mode": "embedding on" if embedding else "embedding off", "clients": clients,
             "loadavg_start": load_before, "loadavg_end": load_after}
        )
        if embedding:
            finished = time.monotonic()
            row["drain_after_s"] = round(_wait_drained(port, finished), 1)
        _delete(port, tokens[:clients], conversations)
    if not embedding:
        import redis

        redis.Redis.from_url(OFF_BROKER).flushdb()
    label = f"{row['mode']}, {clients} clients"
    print(f"  {label}: p50 {row['p50_ms']} p95 {row['p95_ms']} ms, {row['rps']} req/s, {row['errors']} errors, "
          f"load {load_before}->{load_after}" + (f", drained {row['drain_after_s']} s later" if embedding else ""),
          flush=True)
    return row


def measure_burst(args, url, tokens, log_path) -> dict:
    import psycopg

    env = _env(url, embedding=True)
    clients = min(8, len(tokens))
    per_client = args.burst // clients
    with _server(args.server, env, log_path) as port:
        conversations = _conversations(port, tokens[:clients])
        trace: list[dict] = []
        with multiprocessing.Pool(clients) as pool:
            _run_load(pool, port, tokens[:clients], conversations, 5, start_index=100_000)
            _wait_drained(port, time.monotonic())
            load_before = _loadavg()
            started = time.monotonic()
            sampling = threading.Event()

            def sample():
                while not sampling.is_set():
                    backlog, depth = _backlog(port)
                    trace.append({"t": round(time.monotonic() - started, 2), "backlog": int(backlog),
                                  "queue": int(depth)})
                    sampling.wait(0.5)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            row = _run_load(pool, port, tokens[:clients], conversations, per_client)
            posted = time.monotonic() - started
            sampling.set()
            sampler.join()
        drained = _wait_drained(port, started, trace=trace)
        load_after = _loadavg()
        with psycopg.connect(url) as conn:
            missing, duplicated, embedded = conn.execute(
                """
                SELECT count(*) FILTER (WHERE e.n IS NULL), count(*) FILTER (WHERE e.n > 1), count(e.n)
                FROM conversations_message m
                LEFT JOIN (SELECT message_id, count(*) AS n FROM search_messageembedding GROUP BY message_id) e
                  ON e.message_id = m.id
                WHERE m.conversation_id = ANY(%s::uuid[])
                """,
                [conversations],
            ).fetchone()
        _delete(port, tokens[:clients], conversations)
    result = {
        "messages": per_client * clients,
        "clients": clients,
        "create": row,
        "posting_s": round(posted, 1),
        "all_embedded_after_s": round(drained, 1),
        "drain_after_posting_s": round(drained - posted, 1),
        "peak_backlog": max(point["backlog"] for point in trace),
        "peak_queue": max(point["queue"] for point in trace),
        "messages_without_vector": missing,
        "messages_with_several_vectors": duplicated,
        "messages_embedded": embedded,
        "loadavg_start": load_before,
        "loadavg_end": load_after,
        "backlog_trace": trace,
    }
    print(f"  burst of {result['messages']}: posted in {result['posting_s']} s, all embedded after "
          f"{result['all_embedded_after_s']} s (peak backlog {result['peak_backlog']}, queue {result['peak_queue']}), "
          f"{missing} without a vector, {duplicated} with several", flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--requests", type=int, default=150, help="message creates per client per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per mode and client count")
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--server", choices=["runserver", "gunicorn"], default="runserver")
    parser.add_argument("--results", default="embedded_writes", help="name of the JSON file under bench/results/")
    args = parser.parse_args()

    log_path = ROOT / ".data" / "bench-embedded-writes.log"
    log_path.parent.mkdir(exist_ok=True)
    print("recreating the bench database and migrating…", flush=True)
    url = _recreate_database()
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=_env(url, embedding=False),
                   check=True, capture_output=True)
    tokens = issue_tokens([f"writes-{c}@example.com" for c in range(max(max(args.clients), 8))],
                          _env(url, embedding=False))

    rounds = []
    for clients in args.clients:
        for r in range(args.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            for embedding in order:
                rounds.append(measure_round(args, url, tokens, clients, embedding, log_path))

    summary = []
    for clients in args.clients if rounds else []:
        mine = [row for row in rounds if row["clients"] == clients]
        on = [row for row in mine if row["mode"] == "embedding on"]
        off = [row for row in mine if row["mode"] == "embedding off"]

        def median(rows, key):
            return round(statistics.median(row[key] for row in rows), 2)

        line = {
            "clients": clients,
            "off_p50_ms": median(off, "p50_ms"), "off_p95_ms": median(off, "p95_ms"), "off_rps": median(off, "rps"),
            "on_p50_ms": median(on, "p50_ms"), "on_p95_ms": median(on, "p95_ms"), "on_rps": median(on, "rps"),
        }
        line["p95_on_over_off"] = round(line["on_p95_ms"] / line["off_p95_ms"], 2)
        line["p50_on_over_off"] = round(line["on_p50_ms"] / line["off_p50_ms"], 2)
        line["rounds_p95_ratios"] = [
            round(a["p95_ms"] / b["p95_ms"], 2) for a, b in zip(on, off, strict=False)
        ]
        summary.append(line)

    results = {
        "server": args.server if args.server == "runserver" else "gunicorn 1 worker x 4 threads",
        "embedding_off": f"CELERY_BROKER_URL={OFF_BROKER} (jobs published, no worker reads them)",
        "embedding_on": "no broker: the in-process worker thread embeds with the local int8 model",
        "requests_per_client": args.requests,
        "summary": summary,
        "rounds": rounds,
        "burst": None,
    }
    if rounds:
        print_table("message create, embedding on (in-process worker) vs off (median of rounds)", summary,
                    ["clients", "off_p50_ms", "off_p95_ms", "off_rps", "on_p50_ms", "on_p95_ms", "on_rps",
                     "p95_on_over_off", "rounds_p95_ratios"])
        print_table("rounds", rounds, ["mode", "clients", "p50_ms", "p95_ms", "p99_ms", "rps", "errors",
                                       "loadavg_start", "loadavg_end", "drain_after_s"])
        write_results(args.results, results)
    if args.burst:
        results["burst"] = measure_burst(args, url, tokens, log_path)
        write_results(args.results, results)


if __name__ == "__main__":
    main()
