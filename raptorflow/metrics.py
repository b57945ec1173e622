"""The product's own Prometheus metrics, served at /metrics with django-prometheus's.

Provider modules and selectors report through the small functions below (never touching
prometheus_client themselves). Under gunicorn with several workers the client runs in
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by gunicorn.conf.py): each process writes
its samples to files there and /metrics merges them.

Two figures are read when /metrics is scraped instead of being counted: the background
queue depth (from the Celery broker, or the in-process job queue) and the progress of the
last backfill (kept in the shared cache by the backfill command, which runs in a process of
its own). Neither is a per-process number, so counting them in each worker would be wrong.

/metrics wants `Authorization: Bearer <METRICS_TOKEN>` whenever METRICS_TOKEN is set. In
production an unset METRICS_TOKEN does not stop start-up (the API itself does not need it);
/metrics then answers 503 until it is set, so it is never open to the internet.
"""

import hmac
import logging
import os
import time
from contextlib import contextmanager

import prometheus_client
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from raptorflow.errors import error_body

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


# --- read at scrape time ----------------------------------------------------------------

_BACKFILL_KEY = "metrics:backfill"


def report_backfill_progress(*, done: int, total: int, model: str = "") -> None:
    """Called by the backfill command as it goes; /metrics shows the latest figures."""
    from django.core.cache import cache

    cache.set(_BACKFILL_KEY, {"done": done, "total": total, "model": model, "at": time.time()}, timeout=7 * 86400)


def _broker_queue_depths() -> dict[str, int]:
    broker = settings.CELERY_BROKER_URL
    queue = getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")
    if not broker:
        from raptorflow import jobs

        return {"in_process": jobs.in_process_worker().pending_count()}
    if not broker.startswith(("redis://", "rediss://")):
        return {}
    import redis

    client = redis.Redis.from_url(broker, socket_timeout=1, socket_connect_timeout=1)
    try:
        # kombu's Redis transport keeps waiting messages in a list named after the queue
        # and messages handed to a worker but not yet acknowledged in the "unacked" hash.
        return {queue: client.llen(queue), "unacked": client.hlen("unacked")}
    finally:
        client.close()


class ScrapeTimeCollector:
    def collect(self):
        depth = GaugeMetricFamily(
            "raptorflow_background_queue_depth",
            "Background jobs waiting (per queue) or handed to a worker and not yet acknowledged (unacked).",
            labels=["queue"],
        )
        try:
            for queue, size in _broker_queue_depths().items():
                depth.add_metric([queue], size)
        except Exception:
            logger.warning("Could not read the background queue depth", exc_info=True)
        yield depth

        from django.core.cache import cache

        backfill = GaugeMetricFamily(
            "raptorflow_backfill_messages",
            "Progress of the latest embedding backfill: messages done and total.",
            labels=["state", "model"],
        )
        try:
            progress = cache.get(_BACKFILL_KEY)
        except Exception:
            progress = None
        if progress:
            backfill.add_metric(["done", progress["model"]], progress["done"])
            backfill.add_metric(["total", progress["model"]], progress["total"])
        yield backfill


# --- the /metrics view ------------------------------------------------------------------


def _refusal(request) -> JsonResponse | None:
    token = settings.METRICS_TOKEN
    if not token:
        if settings.PRODUCTION:
            return JsonResponse(
                error_body("not_configured", "Metrics are disabled until METRICS_TOKEN is set."), status=503
            )
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        response = JsonResponse(
            error_body("not_authenticated", "Metrics want 'Authorization: Bearer <METRICS_TOKEN>'."), status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        return JsonResponse(error_body("permission_denied", "This metrics token is not valid."), status=403)
    return None


@require_GET
def metrics_view(request):
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prometheus_client.REGISTRY
    scrape_time = CollectorRegistry()
    scrape_time.register(ScrapeTimeCollector())
    body = prometheus_client.generate_latest(registry) + prometheus_client.generate_latest(scrape_time)
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)
