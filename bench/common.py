"""Shared pieces of the benchmarks: a dedicated database on the embedded server, server
processes, percentiles, and the table/JSON output."""

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable


def bench_database_url(name: str = "raptorflow_bench") -> str:
    """A database of its own on the embedded server (or on DATABASE_URL's server), so a
    benchmark never touches development data."""
    sys.path.insert(0, str(ROOT))
    base = os.environ.get("DATABASE_URL")
    if not base:
        from raptorflow.embedded_db import embedded_database_url

        base = embedded_database_url(ROOT / ".data" / "pg")
    import psycopg

    maintenance = base.replace("/raptorflow?", "/postgres?", 1) if "/raptorflow?" in base else base
    with psycopg.connect(maintenance, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return base.replace("/raptorflow?", f"/{name}?", 1) if "/raptorflow?" in base else base


def manage(*args: str, env: dict, capture: bool = True) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=capture, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(port: int, path: str = "/health", timeout: float = 60.0) -> None:
    import http.client

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not come up")


@contextmanager
def gunicorn(env: dict, *, workers: int = 2, threads: int = 4, log_path: Path | None = None):
    """gunicorn on a loopback port (yielded). Its output goes to `log_path` (or nowhere: a
    pipe nobody reads would stall the server once full)."""
    port = free_port()
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [
            PYTHON, "-m", "gunicorn", "raptorflow.wsgi:application",
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
            "--worker-class", "gthread", "--log-level", "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        wait_for_http(port)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_path:
            log.close()


def issue_tokens(emails: list[str], env: dict) -> list[str]:
    """An access token for each email (the user and a personal organization are created when
    missing), minted in one manage.py process."""
    code = (
        "from accounts.services import landing_organization, user_get_or_create\n"
        "from accounts.tokens import mint_tokens\n"
        f"for email in {emails!r}:\n"
        "    user, _ = user_get_or_create(email=email)\n"
        "    print('token:', mint_tokens(user, landing_organization(user))['access'])\n"
    )
    output = manage("shell", "-c", code, env=env)
    return [line.split(" ", 1)[1] for line in output.splitlines() if line.startswith("token: ")]


class ApiClient:
    """One keep-alive HTTP/1.1 connection to the server, JSON in and out. Never raises for
    the server's answer: request() returns a Reply (status 0 when the connection failed)
    and reconnects on the next call."""

    def __init__(self, port: int, token: str | None = None, timeout: float = 30.0):
        self.port, self.token, self.timeout = port, token, timeout
        self._conn = None

    def request(self, method: str, path: str, body=None, headers: dict | None = None) -> "Reply":
        import http.client

        all_headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        start = time.perf_counter()
        try:
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self._conn.request(method, path, body=payload, headers=all_headers)
            response = self._conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return Reply(0, "", None, f"{type(exc).__name__}: {exc}", (time.perf_counter() - start) * 1000)
        elapsed = (time.perf_counter() - start) * 1000
        content_type = response.getheader("Content-Type", "")
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        data = None
        if content_type.startswith("application/json"):
            with suppress(ValueError):
                data = json.loads(raw)
        return Reply(response.status, content_type, data, raw[:300].decode(errors="replace"), elapsed)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Reply:
    __slots__ = ("status", "content_type", "data", "text", "elapsed_ms")

    def __init__(self, status, content_type, data, text, elapsed_ms):
        self.status, self.content_type, self.data, self.text, self.elapsed_ms = (
            status, content_type, data, text, elapsed_ms
        )

    @property
    def is_json_error(self) -> bool:
        """An error in the API's shape: {"error": {"code", "message"}}."""
        error = self.data.get("error") if isinstance(self.data, dict) else None
        return isinstance(error, dict) and "code" in error and "message" in error


def percentiles(samples_ms: list[float]) -> dict:
    ordered = sorted(samples_ms)

    def pick(q: float) -> float:
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {
        "count": len(ordered),
        "p50_ms": round(pick(0.50), 2),
        "p95_ms": round(pick(0.95), 2),
        "p99_ms": round(pick(0.99), 2),
        "mean_ms": round(statistics.fmean(ordered), 2) if ordered else float("nan"),
    }


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "note": "load generator runs on the same machine as the server and the database",
    }


def print_table(title: str, rows: list[dict], columns: list[str]) -> None:
    print(f"\n{title}")
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def write_results(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2))
    print(f"\nresults written to {path.relative_to(ROOT)}")
    return path


def setup_django(database_name: str) -> None:
    """Django on a benchmark database of its own, migrated, for in-process benchmarks."""
    os.environ["DATABASE_URL"] = bench_database_url(database_name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "raptorflow.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
