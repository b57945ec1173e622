"""API benchmark: latency percentiles and throughput of the hot endpoints, with N
concurrent keep-alive clients on loopback against gunicorn on the embedded database.

    .venv/bin/python bench/api.py [--clients 8] [--requests 400] [--workers 2] [--threads 4]
                                  [--skip-list] [--skip-search] [--skip-reply] [--results api]

Message create is measured next to `…/messages/recent` in the same run, and the table ends
with their ratio (create req/s over recent req/s; README "Performance"): on a shared machine
the ratio is steadier than either figure.

Background embedding jobs go to a Redis broker (db 12) with no worker attached, as in
production where Celery workers run on other machines; the queue is purged afterwards.
Chat replies use a stub OpenAI-compatible server on loopback. Before the search scenario the
stored messages are embedded (`backfill_embeddings`), and every search sends a query no
other request of the run sends, so no cache could serve it. The load generator shares
the machine's cores with gunicorn and PostgreSQL, so the figures are a floor."""

import argparse
import http.client
import json
import multiprocessing
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    bench_database_url,
    free_port,
    gunicorn,
    manage,
    percentiles,
    print_table,
    write_results,
)

CORPUS = [
    "What should be our Q4 focus for the product launch?",
    "How much should we spend on paid social ads next quarter?",
    "Draft three subject lines for the holiday email campaign.",
    "Which channels brought the most qualified leads last month?",
    "Summarize the competitor's pricing changes.",
    "Plan the webinar promotion calendar for November.",
]


class StubOpenAI(BaseHTTPRequestHandler):
    """Answers chat completions like OpenAI would, instantly, streamed or not."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        text = "Focus on retention campaigns and a tight paid-social budget."
        usage = {"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132}
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for word in text.split(" "):
                chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": body.get("model"),
                         "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            final = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": body.get("model"),
                     "choices": [], "usage": usage}
            self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
            return
        payload = json.dumps({
            "id": "c", "object": "chat.completion", "created": 0, "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage,
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _client(args):
    """One client process: sequential keep-alive requests, latencies in ms."""
    port, token, method, path, body, count, client = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    samples, errors = [], 0
    for i in range(count):
        payload = json.dumps(body(client, i)).encode() if body else None
        start = time.perf_counter()
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        response.read()
        samples.append((time.perf_counter() - start) * 1000)
        if response.status >= 400:
            errors += 1
    conn.close()
    return samples, errors


def _message_body(client, i):
    return {"role": "user", "content": CORPUS[i % len(CORPUS)]}


QUERY_ASKS = ["budget allocation for", "best performing creative in", "next steps on", "risks around",
              "who owns", "last month's numbers for", "a summary of", "open questions about"]
QUERY_TOPICS = ["paid social ads", "the holiday email campaign", "the Q4 launch", "webinar promotion",
                "competitor pricing", "qualified leads", "influencer partnerships", "trial churn"]


def _search_body(client, i):
    """A query no other request of the run sends (client and request number in it), so no
    cache of query embeddings or results could answer it."""
    ask = QUERY_ASKS[i % len(QUERY_ASKS)]
    topic = QUERY_TOPICS[(i // len(QUERY_ASKS) + client) % len(QUERY_TOPICS)]
    return {"query": f"{ask} {topic}, week {i} of team {client}", "limit": 5}


def _reply_body(client, i):
    return {"content": CORPUS[i % len(CORPUS)]}


def run_scenario(pool, name, port, tokens, method, path_for, body, per_client):
    jobs = [(port, tokens[c], method, path_for(c), body, per_client, c) for c in range(len(tokens))]
    start = time.perf_counter()
    results = pool.map(_client, jobs)
    elapsed = time.perf_counter() - start
    samples = [s for client_samples, _ in results for s in client_samples]
    errors = sum(e for _, e in results)
    row = {"scenario": name, **percentiles(samples), "rps": round(len(samples) / elapsed, 1), "errors": errors}
    print(f"  {name}: p95 {row['p95_ms']} ms, {row['rps']} req/s, {errors} errors", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400, help="requests per client per scenario")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--skip-list", action="store_true", help="no message list scenario")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-reply", action="store_true")
    parser.add_argument("--results", default="api", help="name of the JSON file under bench/results/")
    args = parser.parse_args()

    stub_port = free_port()
    stub = ThreadingHTTPServer(("127.0.0.1", stub_port), StubOpenAI)
    threading.Thread(target=stub.serve_forever, daemon=True).start()

    env = {
        **os.environ,
        "DATABASE_URL": bench_database_url(),
        "HF_HUB_OFFLINE": "1",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/12",
        "OPENAI_API_KEY": "sk-bench-stub",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{stub_port}/v1",
        "CHAT_PROVIDERS": "openai",
        "RATE_LIMIT_USER": "1000000/min",
        "LOG_LEVEL": "WARNING",
    }
    print("migrating the bench database…", flush=True)
    manage("migrate", "--noinput", env=env)
    tokens = []
    for c in range(args.clients):
        out = manage("issue_token", f"bench-client-{c}@example.com", env=env)
        tokens.append(dict(line.split(": ", 1) for line in out.strip().splitlines())["access"])

    rows = []
    with gunicorn(env, workers=args.workers, threads=args.threads) as port:
        conversations = []
        for token in tokens:
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("POST", "/api/conversations", body=json.dumps({"title": "Bench", "agent_type": "strategy"}),
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            response = conn.getresponse()
            conversations.append(json.loads(response.read())["id"])
        messages = lambda c: f"/api/conversations/{conversations[c]}/messages"  # noqa: E731
        with multiprocessing.Pool(args.clients) as pool:
            print(f"{args.clients} clients × {args.requests} requests per scenario", flush=True)
            rows.append(run_scenario(pool, "message create", port, tokens, "POST", messages, _message_body,
                                     args.requests))
            if not args.skip_list:
                rows.append(run_scenario(pool, "message list (20)", port, tokens, "GET",
                                         lambda c: messages(c) + "?page_size=20", None, args.requests))
            rows.append(run_scenario(pool, "recent (10)", port, tokens, "GET",
                                     lambda c: messages(c) + "/recent?limit=10", None, args.requests))
            if not args.skip_search:
                # The stored messages get their vectors first (the jobs went to a queue no
                # worker reads), so each search ranks the conversation's real embeddings.
                manage("backfill_embeddings", env=env)
                rows.append(run_scenario(
                    pool, "semantic search", port, tokens, "POST",
                    lambda c: f"/api/search/semantic-search?conversation_id={conversations[c]}", _search_body,
                    max(1, args.requests // 4)))
            if not args.skip_reply:
                rows.append(run_scenario(
                    pool, "reply (stub model)", port, tokens, "POST",
                    lambda c: f"/api/conversations/{conversations[c]}/reply", _reply_body,
                    max(1, args.requests // 4)))
    stub.shutdown()
    import redis

    redis.Redis.from_url("redis://127.0.0.1:6379/12").flushdb()

    print_table("API latency (ms) and throughput", rows,
                ["scenario", "count", "p50_ms", "p95_ms", "p99_ms", "rps", "errors"])
    by_name = {row["scenario"]: row for row in rows}
    ratio = round(by_name["message create"]["rps"] / by_name["recent (10)"]["rps"], 2)
    print(f"message create / recent throughput: {ratio}")
    gunicorn_config = {"workers": args.workers, "threads": args.threads}
    write_results(args.results, {"clients": args.clients, "gunicorn": gunicorn_config,
                                 "scenarios": rows, "create_over_recent_rps": ratio})


if __name__ == "__main__":
    main()
