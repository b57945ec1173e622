"""Background jobs through real Celery workers on the run's Redis (database 14): a message posted to
a gunicorn server is embedded by a worker process; a worker killed with SIGKILL in the
middle of the job has it redelivered to the next worker, with no duplicate embedding.

The embedding provider is OpenAI's SDK pointed at a fake OpenAI server on loopback, so the
test controls how long "OpenAI" takes to answer (here: until the worker has been killed)."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from accounts.services import user_create_with_personal_organization
from accounts.tokens import mint_tokens
from conversations.models import Message
from search.models import MessageEmbedding
from tests.production.conftest import ROOT, flushed_redis, free_port, gunicorn_server, process_env, request
from tests.redis_server import redis_url

BROKER = redis_url(14)
DIMENSIONS = 64


class FakeOpenAI:
    """POST /v1/embeddings on 127.0.0.1, answering like OpenAI. While `hold` is set, each
    request waits (up to a minute) before it is answered: a slow upstream."""

    def __init__(self):
        self.requests: list[list[str]] = []
        self.arrived = threading.Event()
        self.hold = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body["input"])
                fake.arrived.set()
                deadline = time.monotonic() + 60
                while fake.hold.is_set() and time.monotonic() < deadline:
                    time.sleep(0.05)
                dims = body.get("dimensions", 1536)
                data = [
                    {"object": "embedding", "index": i, "embedding": [((i + j) % 7 + 1) / 10 for j in range(dims)]}
                    for i, _ in enumerate(body["input"])
                ]
                payload = json.dumps({
                    "object": "list", "data": data, "model": body["model"],
                    "usage": {"prompt_tokens": 3, "total_tokens": 3},
                }).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the worker that asked is gone
                    pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.hold.clear()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_openai():
    fake = FakeOpenAI()
    yield fake
    fake.close()


@pytest.fixture
def broker():
    with flushed_redis(14) as client:
        yield client


def _env(fake: FakeOpenAI) -> dict:
    return process_env(
        REDIS_URL=BROKER,
        CELERY_BROKER_URL=BROKER,
        EMBEDDING_PROVIDER="openai",
        EMBEDDING_DIMENSIONS=str(DIMENSIONS),
        OPENAI_API_KEY="sk-test-fake-openai",
        OPENAI_BASE_URL=f"http://127.0.0.1:{fake.port}/v1",
        PROVIDER_MAX_RETRIES="0",
        # Fast recovery of a dead worker's job for the test; production keeps 30 minutes.
        CELERY_VISIBILITY_TIMEOUT="2",
        CELERY_UNACKED_RESTORE_INTERVAL="1",
        CELERY_UNACKED_RESTORE_THROTTLE="1",
    )


class Worker:
    def __init__(self, proc: subprocess.Popen, log_path: Path):
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL to the whole worker (main process and pool children), as when an
        instance disappears: nothing gets to acknowledge or requeue anything."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@contextmanager
def celery_worker(env: dict, name: str):
    log_file = tempfile.NamedTemporaryFile(prefix="celery-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "raptorflow", "worker", "--pool=prefork", "--concurrency=1",
         "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{name}@%h"],
        cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
    )
    worker = Worker(proc, Path(log_file.name))
    try:
        _wait_for(lambda: "ready." in worker.log() or proc.poll() is not None, 90, worker.log)
        assert proc.poll() is None, worker.log()
        yield worker
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log_file.close()
        os.unlink(log_file.name)


def _wait_for(condition, timeout: float, describe=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s\n{describe()[-4000:]}")
        time.sleep(0.1)


def _post_message(server, user, content: str, request_id: str = "post-message-1") -> str:
    headers = {"Authorization": f"Bearer {mint_tokens(user, user.default_organization)['access']}"}
    status, _, conversation = request(server.port, "POST", "/api/conversations",
                                      body={"title": "Launch", "agent_type": "strategy"}, headers=headers)
    assert status == 201, conversation
    status, _, message = request(server.port, "POST", f"/api/conversations/{conversation['id']}/messages",
                                 body={"role": "user", "content": content},
                                 headers={**headers, "X-Request-ID": request_id})
    assert status == 201, message
    return message["id"]


def test_a_posted_message_is_embedded_by_a_celery_worker(transactional_db, fake_openai, broker):
    user = user_create_with_personal_organization(email="worker@acme.test", name="Worker")
    env = _env(fake_openai)
    with gunicorn_server(env) as server, celery_worker(env, "w1") as worker:
        message_id = _post_message(server, user, "What should be our Q4 focus?")
        _wait_for(lambda: MessageEmbedding.objects.filter(message_id=message_id).exists(), 60, worker.log)
        # The job ran in the worker, not in the web process.
        _wait_for(lambda: "succeeded" in worker.log(), 30, worker.log)
        worker_log = worker.log()

    embedding = MessageEmbedding.objects.get(message_id=message_id)
    assert (embedding.model, embedding.dimensions) == ("text-embedding-3-small", DIMENSIONS)
    assert len(embedding.embedding) == DIMENSIONS
    assert embedding.owner_id == user.pk
    assert fake_openai.requests == [["What should be our Q4 focus?"]]
    # The job's log lines carry the id of the request that posted the message.
    job_lines = [line for line in worker_log.splitlines() if "search.tasks.embed_message" in line]
    assert any("succeeded" in line and "[post-message-1]" in line for line in job_lines), worker_log


def test_a_worker_killed_mid_job_has_the_job_redelivered_without_duplicates(transactional_db, fake_openai, broker):
    user = user_create_with_personal_organization(email="killed@acme.test", name="Killed")
    env = _env(fake_openai)
    fake_openai.hold.set()  # "OpenAI" answers only once the first worker is dead
    with gunicorn_server(env) as server:
        with celery_worker(env, "doomed") as doomed:
            message_id = _post_message(server, user, "Plan the webinar promotion calendar")
            assert fake_openai.arrived.wait(60), doomed.log()
            doomed.kill()

        # Nothing was acknowledged: the job waits in Redis's unacked set, nothing is stored.
        assert broker.hlen("unacked") == 1
        assert not MessageEmbedding.objects.filter(message_id=message_id).exists()
        fake_openai.hold.clear()

        with celery_worker(env, "rescuer") as rescuer:
            _wait_for(lambda: MessageEmbedding.objects.filter(message_id=message_id).exists(), 60, rescuer.log)
            # The same job delivered once more (as a visibility-timeout race could) is a no-op.
            subprocess.run(
                [sys.executable, "-m", "celery", "-A", "raptorflow", "call", "search.tasks.embed_message",
                 "--args", json.dumps([message_id])],
                cwd=ROOT, env=env, check=True, capture_output=True, timeout=60,
            )
            _wait_for(lambda: rescuer.log().count("succeeded") >= 2, 60, rescuer.log)

    assert MessageEmbedding.objects.filter(message_id=message_id).count() == 1
    # The provider was asked twice (the killed attempt and the redelivery), not three times:
    # the duplicate found the stored vector of the same text.
    assert fake_openai.requests == [["Plan the webinar promotion calendar"]] * 2
    assert broker.hlen("unacked") == 0
    assert Message.objects.filter(pk=message_id).count() == 1
