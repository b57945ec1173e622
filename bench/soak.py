"""Mixed-load soak: N concurrent clients, each with its own account, for a bounded time
against gunicorn on a database of its own, mixing what the product's users do: create and
list conversations, post, list and page through messages, recent messages, semantic
search (conversation-scoped and global) and embedding stats. Background embedding runs as
in the embedded default (a worker thread in each gunicorn process, local model).

    .venv/bin/python bench/soak.py [--clients 8] [--duration 120] [--workers 2] [--threads 4]

Passes (exit 0) with no 5xx, no dropped connection and every stored message counted in its
conversation afterwards. The load generator shares the machine with the server and the
database. tests/reliability/test_soak.py runs the same scenario for a few seconds in CI.
"""

import argparse
import os
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api import CORPUS as API_CORPUS  # noqa: E402
from bench.common import (  # noqa: E402
    ApiClient,
    bench_database_url,
    gunicorn,
    issue_tokens,
    manage,
    percentiles,
    print_table,
    write_results,
)

CORPUS = [
    *API_CORPUS,
    "Retention campaigns did better than acquisition in September.",
    "Our newsletter open rate dropped after the redesign.",
]
QUERIES = ["budget for paid ads", "email campaign ideas", "lead generation channels", "product launch focus"]
AGENT_TYPES = ["strategy", "content", "research", "analytics", "general"]

# (operation, weight): roughly what a busy client does.
MIX = [
    ("conversation create", 4),
    ("conversation list", 10),
    ("message post", 34),
    ("message list", 14),
    ("recent", 14),
    ("search", 8),
    ("global search", 4),
    ("embedding stats", 6),
    ("conversation get", 6),
]


class Tally:
    """Thread-safe record of every request: latencies and statuses per operation, the
    failures (5xx or no answer) and the messages stored per conversation."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = defaultdict(list)
        self.statuses = defaultdict(Counter)
        self.failures = []
        self.stored = defaultdict(set)

    def record(self, op: str, reply) -> None:
        with self.lock:
            self.latencies[op].append(reply.elapsed_ms)
            self.statuses[op][reply.status] += 1
            if reply.status == 0 or reply.status >= 500:
                self.failures.append({"op": op, "status": reply.status, "body": reply.text[:200]})


def _path_of(url: str) -> str:
    """The path and query of a pagination link (the server names itself by its Host)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _client(index: int, port: int, token: str, deadline: float, seed: int, tally: Tally) -> None:
    rng = random.Random(seed * 1000 + index)
    api = ApiClient(port, token)
    conversations = []

    def create_conversation():
        body = {"title": f"Soak {index}", "agent_type": rng.choice(AGENT_TYPES)}
        reply = api.request("POST", "/api/conversations", body)
        tally.record("conversation create", reply)
        if reply.status == 201:
            conversations.append(reply.data["id"])

    create_conversation()
    operations, weights = zip(*MIX, strict=True)
    sent = 0
    while time.monotonic() < deadline:
        op = rng.choices(operations, weights)[0]
        if not conversations or op == "conversation create":
            create_conversation()
            continue
        conversation = rng.choice(conversations)
        if op == "conversation list":
            reply = api.request("GET", "/api/conversations?page_size=20")
        elif op == "conversation get":
            reply = api.request("GET", f"/api/conversations/{conversation}")
        elif op == "message post":
            sent += 1
            content = f"{rng.choice(CORPUS)} (client {index}, #{sent})"
            body = {"role": "user", "content": content}
            reply = api.request("POST", f"/api/conversations/{conversation}/messages", body)
            if reply.status == 201:
                with tally.lock:
                    tally.stored[conversation].add(reply.data["id"])
        elif op == "message list":
            reply = api.request("GET", f"/api/conversations/{conversation}/messages?page_size=20")
            cursor = (reply.data or {}).get("next") if reply.status == 200 else None
            if cursor:  # and the next page, as a client scrolling back would
                tally.record(op, reply)
                reply = api.request("GET", _path_of(cursor))
        elif op == "recent":
            reply = api.request("GET", f"/api/conversations/{conversation}/messages/recent?limit=10")
        elif op == "search":
            reply = api.request(
                "POST",
                f"/api/search/semantic-search?conversation_id={conversation}",
                {"query": rng.choice(QUERIES), "limit": 5},
            )
        elif op == "global search":
            query = rng.choice(QUERIES).replace(" ", "+")
            reply = api.request("GET", f"/api/search/semantic-search/global?query={query}&limit=5")
        else:
            reply = api.request("GET", "/api/search/embedding-stats")
        tally.record(op, reply)
    api.close()


def _count_check(port: int, tokens: list[str], tally: Tally) -> int:
    """Messages that got a 201 but are not counted in their conversation afterwards."""
    counted = {}
    for token in tokens:
        api = ApiClient(port, token)
        page = "/api/conversations?page_size=100"
        while page:
            reply = api.request("GET", page)
            for conversation in reply.data["results"]:
                counted[conversation["id"]] = conversation["message_count"]
            page = reply.data["next"] and _path_of(reply.data["next"])
        api.close()
    return sum(max(0, len(ids) - counted.get(conversation, 0)) for conversation, ids in tally.stored.items())


def run_soak(port: int, tokens: list[str], *, duration: float, seed: int = 0) -> dict:
    """Runs one client thread per token for `duration` seconds; the figures and failures."""
    tally = Tally()
    deadline = time.monotonic() + duration
    started = time.monotonic()
    threads = [
        threading.Thread(target=_client, args=(i, port, token, deadline, seed, tally), daemon=True)
        for i, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 120)
    elapsed = time.monotonic() - started
    rows = []
    for op, _ in MIX:
        samples = tally.latencies.get(op, [])
        statuses = tally.statuses.get(op, Counter())
        rows.append(
            {
                "operation": op,
                **percentiles(samples),
                "statuses": " ".join(f"{status}:{count}" for status, count in sorted(statuses.items())),
            }
        )
    requests = sum(len(samples) for samples in tally.latencies.values())
    return {
        "clients": len(tokens),
        "duration_s": round(elapsed, 1),
        "requests": requests,
        "rps": round(requests / elapsed, 1) if elapsed else 0.0,
        "server_errors": sum(1 for f in tally.failures if f["status"] >= 500),
        "no_answer": sum(1 for f in tally.failures if f["status"] == 0),
        "failures": tally.failures[:20],
        "messages_stored": sum(len(ids) for ids in tally.stored.values()),
        "messages_not_counted": _count_check(port, tokens, tally),
        "operations": rows,
        "statuses": {op: dict(counter) for op, counter in tally.statuses.items()},
    }


def print_report(title: str, result: dict) -> None:
    print_table(title, result["operations"], ["operation", "count", "p50_ms", "p95_ms", "p99_ms", "statuses"])
    print(
        f"\n{result['requests']} requests in {result['duration_s']} s ({result['rps']} req/s) by "
        f"{result['clients']} clients: {result['server_errors']} 5xx, {result['no_answer']} without an answer; "
        f"{result['messages_stored']} messages stored, {result['messages_not_counted']} missing afterwards"
    )
    for failure in result["failures"]:
        print(f"  {failure['op']}: {failure['status']} {failure['body']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=120, help="seconds of load (default 120)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env = {
        **os.environ,
        "DATABASE_URL": bench_database_url("raptorflow_soak"),
        "HF_HUB_OFFLINE": "1",
        "RATE_LIMIT_USER": "off",
        "JWT_ACCESS_MINUTES": "240",
        "LOG_LEVEL": "WARNING",
    }
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "EMBEDDING_PROVIDER", "RAPTORFLOW_TESTING", "BACKGROUND_JOBS_EAGER"):
        env.pop(name, None)
    print("migrating the soak database…", flush=True)
    manage("migrate", "--noinput", env=env)
    tokens = issue_tokens([f"soak-{args.seed}-{c}@example.com" for c in range(args.clients)], env)
    log_path = Path(__file__).resolve().parent / "results" / "soak-gunicorn.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with gunicorn(env, workers=args.workers, threads=args.threads, log_path=log_path) as port:
        print(f"{args.clients} clients for {args.duration:g} s…", flush=True)
        result = run_soak(port, tokens, duration=args.duration, seed=args.seed)
    print_report("Soak: latency (ms) and statuses per operation", result)
    write_results("soak", {"gunicorn": {"workers": args.workers, "threads": args.threads}, **result})
    ok = not result["server_errors"] and not result["no_answer"] and not result["messages_not_counted"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
