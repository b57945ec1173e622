"""Real processes for the production tests: gunicorn servers and Celery workers started
with gunicorn.conf.py / raptorflow.celery against the test database and the run's Redis
(TEST_REDIS_URL's server, databases 13-15 only, flushed before and after)."""

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from django.db import connections

from tests.redis_server import redis_url

ROOT = Path(__file__).resolve().parent.parent.parent

# Variables of the test run that must not leak into a server started by a test.
_NOT_INHERITED = {
    "APP_MODE",
    "ENVIRONMENT",
    "RAPTORFLOW_TESTING",
    "DATABASE_URL",
    "DATABASE_REPLICA_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "PROMETHEUS_MULTIPROC_DIR",
    "METRICS_TOKEN",
    "BACKGROUND_JOBS_EAGER",
}


def pytest_collection_modifyitems(items):
    """A test that starts a server (its fixtures need django_db_setup) gets the test database
    set up even when it does not touch the database itself: pytest-django sets up only the
    databases that marked tests ask for, and the server would otherwise get the development
    database's name from test_database_url()."""
    here = Path(__file__).parent
    for item in items:
        uses_server = here in item.path.parents and "django_db_setup" in item.fixturenames
        if uses_server and item.get_closest_marker("django_db") is None:
            item.add_marker(pytest.mark.django_db)


def test_database_url() -> str:
    """The test database, for a process started by a test (the embedded server listens on a
    unix socket only)."""
    settings_dict = connections["default"].settings_dict
    host = settings_dict["OPTIONS"].get("host") or settings_dict.get("HOST", "")
    user = settings_dict.get("USER") or "postgres"
    return f"postgresql://{user}@/{settings_dict['NAME']}?host={host}"


test_database_url.__test__ = False  # a helper, not a test


def process_env(**overrides: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.update(
        {
            "DATABASE_URL": test_database_url(),
            "HF_HUB_OFFLINE": "1",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port, method, path, *, body=None, headers=None, timeout=30):
    """One HTTP request to a test server: (status, headers, parsed JSON or raw bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    payload = json.dumps(body).encode() if isinstance(body, dict) else body
    all_headers = {"Content-Type": "application/json"} if payload is not None else {}
    all_headers.update(headers or {})
    conn.request(method, path, body=payload, headers=all_headers)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    try:
        data = json.loads(raw) if response.getheader("Content-Type", "").startswith("application/json") else raw
    except ValueError:
        data = raw
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


class Server:
    def __init__(self, port: int, proc: subprocess.Popen, log_path: Path):
        self.port = port
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged:\n{log[-3000:]}")
            time.sleep(0.1)
        return log


@contextmanager
def gunicorn_server(env: dict, *, workers: int = 1, threads: int = 2):
    """gunicorn with the project's gunicorn.conf.py on a loopback port; yields a Server
    whose log() is its stdout and stderr."""
    port = free_port()
    log_file = tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
    env = {
        **env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "raptorflow.wsgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = Server(port, proc, Path(log_file.name))
    try:
        _wait_until_serving(server)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()
        os.unlink(log_file.name)


def _wait_until_serving(server: Server, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.proc.returncode}:\n{server.log()}")
        try:
            # X-Forwarded-Proto: production servers redirect plain HTTP (except /health).
            status, _, _ = request(server.port, "GET", "/health", headers={"X-Forwarded-Proto": "https"}, timeout=5)
            if status in (200, 503):
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"gunicorn did not come up on {server.port}:\n{server.log()}")


@contextmanager
def flushed_redis(db: int):
    """Redis database `db` (13-15 only), empty before and after."""
    assert db in (13, 14, 15)
    client = redis.Redis.from_url(redis_url(db))
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def redis15():
    with flushed_redis(15) as client:
        yield client


@pytest.fixture(scope="session")
def static_root(tmp_path_factory):
    """STATIC_ROOT collected by exactly the Dockerfile's collectstatic line, in its runtime env."""
    from tests.production.deploy_files import dockerfile_env, dockerfile_run  # it imports this module

    root = tmp_path_factory.mktemp("staticfiles")
    run_env, command = dockerfile_run("collectstatic")
    assert command[:2] == ["python", "manage.py"]
    env = {k: v for k, v in os.environ.items() if k not in ("RAPTORFLOW_TESTING", "DATABASE_URL")}
    env.update({**dockerfile_env(), **run_env, "STATIC_ROOT": str(root)})
    result = subprocess.run(
        [sys.executable, *command[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "staticfiles.json").is_file()
    return root
