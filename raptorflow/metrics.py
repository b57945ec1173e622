"""The product's own Prometheus metrics, served at /metrics with django-prometheus's.

Provider modules and selectors report through the small functions below (never touching
prometheus_client themselves). Under gunicorn with several workers the client runs in
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by gunicorn.conf.py): each process writes
its samples to files there and /metrics merges them.

The /metrics view itself, and the figures read only when it is scraped, are in
raptorflow/metrics_view.py: this module is imported by everything that counts (the job
runner included), so it imports nothing of the project but the error shape.
"""

import logging
import time
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

EMBEDDING_SECONDS = Histogram(
    "raptorflow_embedding_seconds",
    "Time of one embedding call (a batch of texts) by provider and outcome.",
    ["provider", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
EMBEDDING_ERRORS = Counter(
    "raptorflow_embedding_errors_total",
    "Failed embedding calls by provider and error.",
    ["provider", "error"],
)
EMBEDDED_TEXTS = Counter(
    "raptorflow_embedded_texts_total",
    "Texts embedded, by provider.",
    ["provider"],
)
CHAT_SECONDS = Histogram(
    "raptorflow_chat_provider_seconds",
    "Time of a chat provider call (a whole stream for streamed replies), by provider and outcome.",
    ["provider", "outcome"],
    buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
)
CHAT_TOKENS = Counter(
    "raptorflow_chat_tokens_total",
    "Tokens reported by chat providers, by provider and kind (prompt, completion).",
    ["provider", "kind"],
)
CHAT_FALLBACKS = Counter(
    "raptorflow_chat_fallbacks_total",
    "A chat provider failed and the next one in CHAT_PROVIDERS was tried.",
    ["provider", "reason"],
)
SEARCH_SECONDS = Histogram(
    "raptorflow_search_seconds",
    "Time of a semantic search (embedding the query and the database query), by mode.",
    ["mode"],
    buckets=_LATENCY_BUCKETS,
)
SEARCH_RESULTS = Histogram(
    "raptorflow_search_results",
    "Results returned by a semantic search, by mode.",
    ["mode"],
    buckets=(0, 1, 2, 5, 10, 20, 50, 100),
)
BACKGROUND_JOBS = Counter(
    "raptorflow_background_jobs_total",
    "Background jobs finished, by task and outcome.",
    ["task", "outcome"],
)
DOCUMENT_INGESTION_SECONDS = Histogram(
    "raptorflow_document_ingestion_seconds",
    "Time to make one document searchable (read, chunk, embed, store), by kind and outcome.",
    ["kind", "outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
DOCUMENT_CHUNKS = Counter(
    "raptorflow_document_chunks_total",
    "Chunks stored for documents that became ready, by kind.",
    ["kind"],
)
DOCUMENT_FAILURES = Counter(
    "raptorflow_document_failures_total",
    "Documents whose processing failed, by kind and reason (password_protected, no_text, corrupt, ...).",
    ["kind", "reason"],
)
AUTH_FAILURES = Counter(
    "raptorflow_auth_failures_total",
    "Requests refused for a bad credential (invalid, expired or revoked token), by code.",
    ["code"],
)


@contextmanager
def embedding_call(provider: str, texts: int):
    """Times one embedding call: `with metrics.embedding_call("openai", len(texts)): ...`."""
    start = time.perf_counter()
    try:
        yield
    except Exception as exc:
        EMBEDDING_SECONDS.labels(provider=provider, outcome="error").observe(time.perf_counter() - start)
        EMBEDDING_ERRORS.labels(provider=provider, error=type(exc).__name__).inc()
        raise
    EMBEDDING_SECONDS.labels(provider=provider, outcome="ok").observe(time.perf_counter() - start)
    EMBEDDED_TEXTS.labels(provider=provider).inc(texts)


def observe_search(*, mode: str, seconds: float, results: int) -> None:
    SEARCH_SECONDS.labels(mode=mode).observe(seconds)
    SEARCH_RESULTS.labels(mode=mode).observe(results)


def observe_chat_call(provider: str | None, outcome: str, seconds: float, prompt_tokens=0, completion_tokens=0):
    provider = provider or "unknown"
    CHAT_SECONDS.labels(provider=provider, outcome=outcome).observe(seconds)
    if prompt_tokens:
        CHAT_TOKENS.labels(provider=provider, kind="prompt").inc(prompt_tokens)
    if completion_tokens:
        CHAT_TOKENS.labels(provider=provider, kind="completion").inc(completion_tokens)


def count_chat_fallback(*, provider: str, reason: str) -> None:
    """`provider` failed with `reason` (e.g. the exception's class) and the next was tried."""
    CHAT_FALLBACKS.labels(provider=provider, reason=reason).inc()


def count_background_job(*, task: str, outcome: str) -> None:
    BACKGROUND_JOBS.labels(task=task, outcome=outcome).inc()


def observe_document_ingestion(*, kind: str, seconds: float, chunks: int = 0, failure: str | None = None) -> None:
    DOCUMENT_INGESTION_SECONDS.labels(kind=kind, outcome="failed" if failure else "ready").observe(seconds)
    if failure:
        DOCUMENT_FAILURES.labels(kind=kind, reason=failure).inc()
    else:
        DOCUMENT_CHUNKS.labels(kind=kind).inc(chunks)


# --- read at scrape time ----------------------------------------------------------------

BACKFILL_PROGRESS_KEY = "metrics:backfill"


def report_backfill_progress(*, done: int, total: int, model: str = "") -> None:
    """Called by the backfill command as it goes; /metrics shows the latest figures."""
    from django.core.cache import cache

    cache.set(
        BACKFILL_PROGRESS_KEY, {"done": done, "total": total, "model": model, "at": time.time()}, timeout=7 * 86400
    )
