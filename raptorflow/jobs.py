"""Background jobs after the transaction commits, wherever they can run (SPEC §2).

    run_after_commit(task, *args)

`task` is a Celery task. Once the surrounding transaction commits (immediately when there
is none), it runs:
- with a broker (CELERY_BROKER_URL, or REDIS_URL): enqueued for the Celery workers;
- with no broker (the embedded default): in this process, on one daemon worker thread fed
  by a bounded queue, off the request path. A full queue drops the job with a warning
  rather than slow a request down (the jobs here are idempotent and have a catch-up
  command, e.g. backfill_embeddings). Failures the task would retry (its
  `autoretry_for`) are retried with exponential backoff, up to its `max_retries`;
- with BACKGROUND_JOBS_EAGER (tests): synchronously, in the committing thread.
A job that fails or cannot be enqueued is logged and never breaks the request that
scheduled it: the request's own data is already committed.

A job runs in the audit context of the request that scheduled it (raptorflow.audit: who,
from where, which request id), so what it records is attributed like the request itself;
a Celery job carries the request id in its headers (raptorflow/celery.py).
"""

import functools
import logging
import queue
import threading

from django.conf import settings
from django.db import connections, transaction

from raptorflow import audit, metrics
from raptorflow.request_context import request_id_of

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000
# In-process retries: 2 s, 4 s, 8 s, ... capped at 5 minutes.
RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 300.0


def run_after_commit(task, *args) -> None:
    context = audit.current()
    if settings.BACKGROUND_JOBS_EAGER:
        transaction.on_commit(functools.partial(_run_logged, task, args, context))
    elif settings.CELERY_BROKER_URL:
        transaction.on_commit(functools.partial(_enqueue, task, args))
    else:
        transaction.on_commit(functools.partial(_worker.submit, task, args, context=context))


def _enqueue(task, args) -> None:
    try:
        # A short publish retry: an unreachable broker must not hold the request for long.
        task.apply_async(args=args, retry=True, retry_policy={"max_retries": 2, "interval_start": 0.1})
    except Exception:
        metrics.count_background_job(task=task.name, outcome="not_enqueued")
        logger.exception("Could not enqueue %s%r; it will be caught up later", task.name, args)


def _run_logged(task, args, context: audit.AuditContext) -> None:
    try:
        with audit.restored(context):
            task(*args)
    except Exception:
        logger.exception("Background job %s%r failed", task.name, args)


def _retry_delay(attempt: int) -> float:
    return min(RETRY_BASE_SECONDS * (2**attempt), RETRY_MAX_SECONDS)


class InProcessWorker:
    """One daemon thread draining a bounded queue of (task, args, attempt, audit context)."""

    def __init__(self, maxsize: int = QUEUE_SIZE):
        self._queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, task, args, attempt: int = 0, context: audit.AuditContext | None = None) -> None:
        self._ensure_thread()
        try:
            self._queue.put_nowait((task, tuple(args), attempt, context or audit.AuditContext()))
        except queue.Full:
            metrics.count_background_job(task=task.name, outcome="dropped")
            logger.warning("Background queue is full; dropped %s%r (it will be caught up later)", task.name, args)

    def pending_count(self) -> int:
        """Jobs waiting in the queue (shown at /metrics as the background queue depth)."""
        return self._queue.qsize()

    def wait_until_idle(self) -> None:
        """Blocks until every queued job has run (retries scheduled for later excepted)."""
        self._queue.join()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="raptorflow-jobs", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            task, args, attempt, context = self._queue.get()
            try:
                with audit.restored(context), request_id_of(context):
                    self._run(task, args, attempt, context)
            finally:
                # This thread's connections: never left open (or broken) between jobs.
                connections.close_all()
                self._queue.task_done()

    def _run(self, task, args, attempt: int, context: audit.AuditContext) -> None:
        try:
            task(*args)
        except Exception as exc:
            retryable = isinstance(exc, tuple(getattr(task, "autoretry_for", ()) or ()))
            retryable = retryable and not isinstance(exc, tuple(getattr(task, "dont_autoretry_for", ()) or ()))
            if retryable and attempt < (getattr(task, "max_retries", 0) or 0):
                delay = _retry_delay(attempt)
                logger.warning("Background job %s%r failed (%s); retrying in %.0fs", task.name, args, exc, delay)
                timer = threading.Timer(delay, self.submit, (task, args, attempt + 1, context))
                timer.daemon = True
                timer.start()
            else:
                logger.exception("Background job %s%r failed", task.name, args)


_worker = InProcessWorker()


def in_process_worker() -> InProcessWorker:
    return _worker
