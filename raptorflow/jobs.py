"""Background jobs after the transaction commits, wherever they can run (SPEC §2).

    run_after_commit(task, *args)

`task` is a Celery task. Once the surrounding transaction commits (immediately when there
is none), it runs:
- with a broker (CELERY_BROKER_URL, or REDIS_URL): enqueued for the Celery workers;
- with no broker (the embedded default): in this process, on one daemon worker thread fed
  by a bounded queue, off the request path (InProcessWorker below);
- with BACKGROUND_JOBS_EAGER (tests): synchronously, in the committing thread.
A job that fails or cannot be enqueued is logged and never breaks the request that
scheduled it: the request's own data is already committed.

The in-process worker shares the web process's cores with request threads, so it keeps out
of their way:
- its thread runs at a lower scheduling priority (nice WORKER_NICENESS, Linux), and code it
  runs can ask `in_background_worker()` to use one core rather than all (the local
  embedding model does: one ONNX Runtime thread there, every core for a query);
- jobs of a task registered with `register_batch` are taken from the queue together (up to
  its batch size) and run in one call: one embedding call for 64 messages costs far less
  than 64 calls;
- what it cannot hold is not lost. A higher layer registers a durable `Backlog` (its
  pending work as rows in the database, e.g. messages without a vector of the active
  model) covering a task. A job of that task that finds the queue full is left to the
  backlog, and the backlog is swept, one chunk at a time between queued jobs, when the
  worker starts (a restarted process picks up what the previous one left) and after such
  an overflow. Its size is shown at /metrics (raptorflow/metrics_view.py). The worker
  starts with the first job or the first request the process serves, whichever is first.
Failures a task would retry (its `autoretry_for`) are retried with exponential backoff, up
to its `max_retries`; a batch that fails so is retried job by job the same way, and one
that fails otherwise is run again job by job, so one bad job does not sink the others.

A job runs in the audit context of the request that scheduled it (raptorflow.audit: who,
from where, which request id), so what it records is attributed like the request itself
(a batch of jobs from several requests runs in a context of its own); a Celery job
carries the request id in its headers (raptorflow/celery.py).
"""

import collections
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import request_started
from django.db import connections, transaction

from raptorflow import audit, metrics
from raptorflow.request_context import request_id_of

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000
# Jobs of a batchable task run together, at most this many (register_batch may say fewer).
BATCH_SIZE = 64
# Added to the worker thread's nice value: request threads of the same process (nice 0)
# win the cores whenever both want them.
WORKER_NICENESS = 10
# In-process retries: 2 s, 4 s, 8 s, ... capped at 5 minutes (a failed backlog sweep too).
RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 300.0


@dataclass(frozen=True)
class Backlog:
    """Work a higher layer keeps durably, so that the in-process worker may lose jobs
    (a full queue, a restart) without losing the work.

    covers: the tasks whose jobs the backlog also finds on its own;
    count(): how many items are pending (read when /metrics is scraped);
    sweep(): a generator working the pending items off in chunks, yielding after each, and
      ending when none is left. It runs on the worker thread between queued jobs.
    """

    name: str
    covers: tuple
    count: Callable[[], int]
    sweep: Callable[[], Iterator[object]]


_batches: dict[str, tuple[Callable, int]] = {}
_backlogs: dict[str, Backlog] = {}
_thread_state = threading.local()


def register_batch(task, run_batch: Callable, *, size: int = BATCH_SIZE) -> None:
    """On the in-process worker, queued jobs of `task` run as `run_batch([args, ...])`, up to
    `size` at a time (Celery still runs them one by one). Called from AppConfig.ready()."""
    _batches[task.name] = (run_batch, max(1, size))


def register_backlog(backlog: Backlog) -> None:
    """Called from AppConfig.ready(); registering the same name again replaces it."""
    _backlogs[backlog.name] = backlog


def backlog_sizes() -> dict[str, int]:
    """Pending items per registered backlog (for /metrics)."""
    return {name: backlog.count() for name, backlog in _backlogs.items()}


def in_background_worker() -> bool:
    """True on the in-process worker thread: code running there should use one core."""
    return getattr(_thread_state, "background", False)


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


def _lower_this_threads_priority() -> None:
    try:
        # On Linux the nice value is per thread: PRIO_PROCESS with a thread id sets only it.
        current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, current + WORKER_NICENESS))
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        logger.debug("Could not lower the background worker's priority", exc_info=True)


@dataclass
class _Job:
    task: object
    args: tuple
    attempt: int
    context: audit.AuditContext


class InProcessWorker:
    """One daemon thread draining a bounded queue of jobs, in batches where a task allows,
    and sweeping the registered backlogs when it starts and after an overflow."""

    def __init__(self, maxsize: int = QUEUE_SIZE):
        self.maxsize = maxsize
        self._jobs: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False  # a job, batch or sweep chunk is running
        # Backlogs to sweep (by name) and the sweeps under way.
        self._due: set[str] = set()
        self._sweeps: dict[str, Iterator[object]] = {}
        self._sweep_failures: dict[str, int] = {}  # consecutive, by backlog (worker thread only)

    # --- what other threads call ----------------------------------------------------------

    def submit(self, task, args, attempt: int = 0, context: audit.AuditContext | None = None) -> None:
        self.start()
        with self._cond:
            if len(self._jobs) < self.maxsize:
                self._jobs.append(_Job(task, tuple(args), attempt, context or audit.AuditContext()))
                self._cond.notify_all()
                return
            covering = [name for name, backlog in _backlogs.items() if task in backlog.covers]
            self._due.update(covering)
            self._cond.notify_all()
        if covering:
            metrics.count_background_job(task=task.name, outcome="left_to_backlog")
            logger.info("Background queue is full; %s%r is left to the %s backlog", task.name, args, covering[0])
        else:
            metrics.count_background_job(task=task.name, outcome="dropped")
            logger.warning("Background queue is full; dropped %s%r (it will be caught up later)", task.name, args)

    def start(self) -> None:
        """Starts the thread unless it runs; a new thread first sweeps every backlog."""
        if self._thread is not None and self._thread.is_alive():
            return
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._due.update(_backlogs)
                self._thread = threading.Thread(target=self._loop, name="raptorflow-jobs", daemon=True)
                self._thread.start()

    def pending_count(self) -> int:
        """Jobs waiting in the queue (shown at /metrics as the background queue depth)."""
        with self._cond:
            return len(self._jobs)

    def wait_until_idle(self, timeout: float | None = None) -> bool:
        """Blocks until every queued job has run and no backlog sweep is due (retries
        scheduled for later excepted). False if `timeout` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not (self._jobs or self._busy or self._due or self._sweeps), timeout=timeout
            )

    # --- the worker thread ----------------------------------------------------------------

    def _loop(self) -> None:
        _thread_state.background = True
        _lower_this_threads_priority()
        while True:
            jobs, sweep = self._take()
            try:
                if jobs:
                    self._run_jobs(jobs)
                else:
                    self._sweep_chunk(sweep)
            except Exception:
                # Whatever happens, the thread lives on: it is the only one running jobs.
                logger.exception("The background worker failed to run %s", [job.task.name for job in jobs] or sweep)
            finally:
                # This thread's connections: never left open (or broken) between jobs.
                connections.close_all()
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _take(self) -> tuple[list[_Job], str | None]:
        """The next unit of work: queued jobs first (a batch of one task where it allows),
        else one chunk of a backlog sweep."""
        with self._cond:
            self._cond.wait_for(lambda: self._jobs or self._due or self._sweeps)
            self._busy = True
            if self._jobs:
                first = self._jobs.popleft()
                batch = _batches.get(first.task.name)
                if batch is None:
                    return [first], None
                taken, rest = [first], collections.deque()
                for job in self._jobs:
                    (taken if job.task is first.task and len(taken) < batch[1] else rest).append(job)
                self._jobs = rest
                return taken, None
            # A sweep under way goes on; else one that is due starts.
            name = next(iter(self._sweeps), None) or self._due.pop()
            return [], name

    def _run_jobs(self, jobs: list[_Job]) -> None:
        if len(jobs) == 1:
            self._run(jobs[0])
            return
        run_batch = _batches[jobs[0].task.name][0]
        contexts = {job.context for job in jobs}
        context = contexts.pop() if len(contexts) == 1 else audit.AuditContext()
        try:
            with audit.restored(context), request_id_of(context):
                run_batch([job.args for job in jobs])
        except Exception as exc:
            if self._retryable(jobs[0].task, exc):
                for job in jobs:
                    self._retry_later(job, exc)
            else:
                logger.warning(
                    "Background batch of %d %s failed (%s); running them one by one", len(jobs), jobs[0].task.name, exc
                )
                for job in jobs:
                    self._run(job)

    def _run(self, job: _Job) -> None:
        try:
            with audit.restored(job.context), request_id_of(job.context):
                job.task(*job.args)
        except Exception as exc:
            if self._retryable(job.task, exc):
                self._retry_later(job, exc)
            else:
                logger.exception("Background job %s%r failed", job.task.name, job.args)

    @staticmethod
    def _retryable(task, exc: Exception) -> bool:
        retryable = isinstance(exc, tuple(getattr(task, "autoretry_for", ()) or ()))
        return retryable and not isinstance(exc, tuple(getattr(task, "dont_autoretry_for", ()) or ()))

    def _retry_later(self, job: _Job, exc: Exception) -> None:
        if job.attempt >= (getattr(job.task, "max_retries", 0) or 0):
            logger.error("Background job %s%r failed for good: %s", job.task.name, job.args, exc)
            return
        delay = _retry_delay(job.attempt)
        logger.warning("Background job %s%r failed (%s); retrying in %.0fs", job.task.name, job.args, exc, delay)
        timer = threading.Timer(delay, self.submit, (job.task, job.args, job.attempt + 1, job.context))
        timer.daemon = True
        timer.start()

    def _sweep_chunk(self, name: str) -> None:
        """One chunk of the backlog's sweep (started here when none is under way). A failed
        sweep is started again after a backoff: the backlog itself keeps the work."""
        backlog = _backlogs.get(name)
        sweep = self._sweeps.get(name)
        try:
            if backlog is None:
                raise StopIteration
            if sweep is None:
                sweep = iter(backlog.sweep())
                with self._cond:
                    self._sweeps[name] = sweep
            next(sweep)
        except StopIteration:
            self._sweep_failures.pop(name, None)
            with self._cond:
                self._sweeps.pop(name, None)
        except Exception as exc:
            with self._cond:
                self._sweeps.pop(name, None)
            attempt = self._sweep_failures.get(name, 0)
            self._sweep_failures[name] = attempt + 1
            delay = _retry_delay(attempt)
            logger.warning("Sweeping the %s backlog failed (%s); trying again in %.0fs", name, exc, delay)
            timer = threading.Timer(delay, self._mark_due, (name,))
            timer.daemon = True
            timer.start()

    def _mark_due(self, name: str) -> None:
        with self._cond:
            self._due.add(name)
            self._cond.notify_all()


_worker = InProcessWorker()


def in_process_worker() -> InProcessWorker:
    return _worker


def _start_with_the_first_request(**_) -> None:
    # A restarted web process sweeps its backlogs without waiting for a new job.
    if _backlogs and not settings.BACKGROUND_JOBS_EAGER and not settings.CELERY_BROKER_URL:
        _worker.start()


request_started.connect(_start_with_the_first_request, dispatch_uid="raptorflow_jobs_start")
