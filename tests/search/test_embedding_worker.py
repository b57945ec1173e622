"""The embedded default's in-process embedding worker (raptorflow.jobs, search.backfill):
queued messages are embedded many to one call, a burst larger than its queue loses
nothing (the messages without a vector are a durable backlog, shown at /metrics), a
restarted process picks that backlog up, and provider failures are still retried.

Messages are posted through the API into the real database; the worker is a fresh one per
test. Where a test needs the worker busy, the local model's first call waits at a gate the
test opens."""

import json
import threading

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from raptorflow import jobs
from search.models import MessageEmbedding
from search.providers import local
from search.providers.local import LocalEmbeddingProvider
from tests.conftest import make_client
from tests.search.conftest import MARKETING_CORPUS, add_message, make_conversation

INT8 = "all-MiniLM-L6-v2-int8"
OPENAI_URL = "https://api.openai.com/v1/embeddings"


class Gate:
    """The local model's calls wait until the gate opens; each call's text count is kept."""

    def __init__(self):
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.calls: list[int] = []

    def install(self, monkeypatch):
        real = LocalEmbeddingProvider._embed_batch

        def gated(provider, texts):
            self.calls.append(len(texts))
            self.entered.set()
            assert self.opened.wait(60), "the test never opened the gate"
            return real(provider, texts)

        monkeypatch.setattr(LocalEmbeddingProvider, "_embed_batch", gated)


@pytest.fixture
def worker(settings, monkeypatch):
    """A fresh in-process worker, as in a process that just started (no broker, not eager)."""
    settings.BACKGROUND_JOBS_EAGER = False
    fresh = jobs.InProcessWorker()
    monkeypatch.setattr(jobs, "_worker", fresh)
    yield fresh
    # Nothing of this test may still run when the database is flushed for the next.
    assert fresh.wait_until_idle(timeout=60)


@pytest.fixture
def gate(monkeypatch, worker):
    gate = Gate()
    gate.install(monkeypatch)
    yield gate
    gate.opened.set()


def _post(client, conversation, content) -> str:
    response = client.post(
        f"/api/conversations/{conversation.id}/messages", {"role": "user", "content": content}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _texts(count: int) -> list[str]:
    """Distinct texts of varied lengths (a batch pads each text to its neighbours' length)."""
    return [
        f"{MARKETING_CORPUS[i % len(MARKETING_CORPUS)]} " + " ".join(["Budget review for week", str(i)] * (i % 5))
        for i in range(count)
    ]


def _embedded(model=INT8) -> dict[str, int]:
    rows = MessageEmbedding.objects.filter(model=model).values_list("message_id", flat=True)
    counts: dict[str, int] = {}
    for message_id in rows:
        counts[str(message_id)] = counts.get(str(message_id), 0) + 1
    return counts


def _scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _backlog(samples) -> float:
    return samples[("raptorflow_background_backlog", (("backlog", "embeddings"),))]


def _queue_depth(samples) -> float:
    return samples[("raptorflow_background_queue_depth", (("queue", "in_process"),))]


@pytest.mark.django_db(transaction=True)
def test_a_burst_larger_than_the_queue_is_fully_embedded_nothing_dropped(worker, gate, owner, org, local_model):
    worker.maxsize = 5
    client = make_client(owner, org)
    conversation = make_conversation(owner, org)
    texts = _texts(25)

    ids = [_post(client, conversation, texts[0])]
    assert gate.entered.wait(30)  # the worker is busy embedding the first message
    ids += [_post(client, conversation, text) for text in texts[1:]]

    # Five jobs wait in the queue; the other nineteen found it full and were left to the backlog.
    assert worker.pending_count() == 5
    assert _embedded() == {}

    gate.opened.set()
    assert worker.wait_until_idle(timeout=60)

    assert _embedded() == dict.fromkeys(ids, 1)
    # Far fewer embedding calls than messages: the queue and the sweep embed in batches.
    assert sum(gate.calls) >= 25
    assert len(gate.calls) <= 4


@pytest.mark.django_db(transaction=True)
def test_the_backlog_gauge_rises_while_the_worker_is_busy_and_returns_to_zero(
    worker, gate, owner, org, anon_client, local_model
):
    client = make_client(owner, org)
    conversation = make_conversation(owner, org)
    before = _scrape(anon_client)
    assert _backlog(before) == 0

    ids = [_post(client, conversation, text) for text in _texts(12)]
    assert gate.entered.wait(30)

    during = _scrape(anon_client)
    assert _backlog(during) == 12
    assert _queue_depth(during) == worker.pending_count() >= 10

    gate.opened.set()
    assert worker.wait_until_idle(timeout=60)

    after = _scrape(anon_client)
    assert (_backlog(after), _queue_depth(after)) == (0, 0)
    assert _embedded() == dict.fromkeys(ids, 1)


@pytest.mark.django_db(transaction=True)
def test_a_restarted_process_embeds_what_the_previous_one_left_in_its_queue(
    settings, monkeypatch, owner, org, anon_client, local_model
):
    settings.BACKGROUND_JOBS_EAGER = False
    # A process whose worker never ran its queue (killed, redeployed) ...
    lost = jobs.InProcessWorker()
    monkeypatch.setattr(lost, "start", lambda: None)
    monkeypatch.setattr(jobs, "_worker", lost)
    client = make_client(owner, org)
    conversation = make_conversation(owner, org)
    ids = [_post(client, conversation, text) for text in _texts(6)]
    assert lost.pending_count() == 6
    assert _embedded() == {}

    # ... and the next process: its first request starts the worker, which sweeps the backlog.
    restarted = jobs.InProcessWorker()
    monkeypatch.setattr(jobs, "_worker", restarted)
    assert anon_client.get("/health").status_code == 200
    assert restarted.wait_until_idle(timeout=60)

    assert _embedded() == dict.fromkeys(ids, 1)
    assert _backlog(_scrape(anon_client)) == 0


@pytest.mark.django_db(transaction=True)
def test_batched_vectors_match_one_by_one_vectors(worker, gate, owner, org, local_model):
    client = make_client(owner, org)
    conversation = make_conversation(owner, org)
    texts = _texts(40)

    ids = [_post(client, conversation, text) for text in texts]
    gate.opened.set()
    assert worker.wait_until_idle(timeout=60)
    assert max(gate.calls) >= 30  # most of them went through one call

    stored = {str(row.message_id): np.array(row.embedding) for row in MessageEmbedding.objects.filter(model=INT8)}
    assert set(stored) == set(ids)
    for message_id, text in zip(ids, texts, strict=True):
        alone = np.array(local_model.embed_one(text))
        cosine = float(stored[message_id] @ alone / (np.linalg.norm(stored[message_id]) * np.linalg.norm(alone)))
        assert cosine >= 0.999, (text, cosine)


@pytest.mark.django_db(transaction=True)
def test_a_provider_outage_during_a_batch_is_retried_until_every_message_is_embedded(
    settings, monkeypatch, respx_mock, worker, owner, org
):
    settings.EMBEDDING_PROVIDER = "openai"
    settings.OPENAI_API_KEY = "sk-test"
    settings.PROVIDER_MAX_RETRIES = 0
    monkeypatch.setattr(jobs, "RETRY_BASE_SECONDS", 0.01)
    answers = []

    def openai(request):
        inputs = json.loads(request.content)["input"]
        if len(answers) < 2:
            answers.append(503)
            return httpx.Response(503, json={"error": {"message": "down"}})
        answers.append(200)
        data = [{"object": "embedding", "index": i, "embedding": [0.1 + i] * 1536} for i in range(len(inputs))]
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": data,
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )

    respx_mock.post(OPENAI_URL).mock(side_effect=openai)
    conversation = make_conversation(owner, org)
    messages = [add_message(conversation, text) for text in _texts(3)]
    from django.db import transaction

    from search import tasks

    with transaction.atomic():
        for message in messages:
            tasks.schedule_message_embedding(message.id)

    def all_embedded():
        return _embedded("text-embedding-3-small") == {str(m.id): 1 for m in messages}

    deadline = threading.Event()
    for _ in range(200):
        if all_embedded():
            break
        deadline.wait(0.05)
    assert all_embedded()
    assert answers[:2] == [503, 503] and 200 in answers


@pytest.mark.django_db(transaction=True)
def test_a_job_that_keeps_failing_is_retried_max_retries_times_then_given_up(monkeypatch, worker):
    from raptorflow.errors import UpstreamUnavailable

    monkeypatch.setattr(jobs, "RETRY_BASE_SECONDS", 0.001)

    class AlwaysDown:
        name = "tests.always_down"
        autoretry_for = (UpstreamUnavailable,)
        dont_autoretry_for = ()
        max_retries = 3
        calls = 0

        def __call__(self, *args):
            AlwaysDown.calls += 1
            raise UpstreamUnavailable("down")

    worker.submit(AlwaysDown(), ("x",))
    for _ in range(200):
        if AlwaysDown.calls >= 4:
            break
        threading.Event().wait(0.02)
    threading.Event().wait(0.2)  # a fifth attempt would come within this
    assert AlwaysDown.calls == 4  # the first run and max_retries retries


@pytest.mark.django_db(transaction=True)
def test_the_worker_thread_runs_at_a_lower_priority_and_embeds_on_one_core():
    import os

    seen = {}

    class Probe:
        name = "tests.probe"

        def __call__(self):
            tid = threading.get_native_id()
            seen["nice"] = os.getpriority(os.PRIO_PROCESS, tid) - os.getpriority(os.PRIO_PROCESS, os.getpid())
            model = local._load(local.MODEL_NAME)
            seen["session"] = (model.session.get_session_options().intra_op_num_threads, model.batch_size)

    worker = jobs.InProcessWorker()
    worker.submit(Probe(), ())
    assert worker.wait_until_idle(timeout=30)

    # One core, one text per run, at a lower priority; a request thread gets every core.
    assert seen == {"nice": jobs.WORKER_NICENESS, "session": (1, 1)}
    model = local._load(local.MODEL_NAME)
    assert model.session.get_session_options().intra_op_num_threads == local._cpu_count()


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_fails_for_good_is_run_job_by_job_so_one_bad_job_sinks_no_other(monkeypatch, worker):
    done, batches = [], []

    class Task:
        name = "tests.batchable"
        autoretry_for = ()
        max_retries = 0

        def __call__(self, item):
            if item == "bad":
                raise ValueError("cannot do this one")
            done.append(item)

    task = Task()

    def run_batch(jobs_args):
        batches.append([args[0] for args in jobs_args])
        raise ValueError("one of them is bad")

    monkeypatch.setitem(jobs._batches, task.name, (run_batch, 10))
    started = threading.Event()
    release = threading.Event()

    class Blocker:
        name = "tests.blocker"

        def __call__(self):
            started.set()
            release.wait(30)

    worker.submit(Blocker(), ())
    assert started.wait(30)
    for item in ("a", "bad", "c"):
        worker.submit(task, (item,))
    release.set()
    assert worker.wait_until_idle(timeout=30)

    assert batches == [["a", "bad", "c"]]
    assert done == ["a", "c"]
