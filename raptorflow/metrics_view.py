"""The /metrics endpoint: django-prometheus's metrics and the product's own
(raptorflow/metrics.py), behind METRICS_TOKEN.

Some figures are read when /metrics is scraped instead of being counted: the background
queue depth (from the Celery broker, or the in-process job queue), the in-process worker's
durable backlogs (raptorflow.jobs.Backlog: counted in the database, so every process of an
instance reports the same figure), the progress of the last backfill (kept in the shared
cache by the backfill command, which runs in a process of its own) and what the layers above
add through hooks.scrape_time_metrics (the feedback counts of conversations). None is a
per-process number, so counting them in each worker would be wrong.

/metrics wants `Authorization: Bearer <METRICS_TOKEN>` whenever METRICS_TOKEN is set. In
production an unset METRICS_TOKEN does not stop start-up (the API itself does not need it);
/metrics then answers 503 until it is set, so it is never open to the internet.

Kept apart from raptorflow/metrics.py because it reads the job runner's queue, while the
job runner counts its jobs through raptorflow/metrics.py: one direction only.
"""

import hmac
import logging
import os

import prometheus_client
from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from raptorflow import hooks, jobs
from raptorflow.errors import error_body
from raptorflow.metrics import BACKFILL_PROGRESS_KEY

logger = logging.getLogger(__name__)


def _broker_queue_depths() -> dict[str, int]:
    broker = settings.CELERY_BROKER_URL
    queue = getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")
    if not broker:
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

        backlog = GaugeMetricFamily(
            "raptorflow_background_backlog",
            "Work the in-process worker still has to do, read from the database (embeddings: "
            "messages without a vector of the active model). Embedded default only.",
            labels=["backlog"],
        )
        if not settings.CELERY_BROKER_URL:
            try:
                for name, size in jobs.backlog_sizes().items():
                    backlog.add_metric([name], size)
            except Exception:
                logger.warning("Could not read the background backlog", exc_info=True)
        yield backlog

        backfill = GaugeMetricFamily(
            "raptorflow_backfill_messages",
            "Progress of the latest embedding backfill: messages done and total.",
            labels=["state", "model"],
        )
        try:
            progress = cache.get(BACKFILL_PROGRESS_KEY)
        except Exception:
            progress = None
        if progress:
            backfill.add_metric(["done", progress["model"]], progress["done"])
            backfill.add_metric(["total", progress["model"]], progress["total"])
        yield backfill

        # Figures the layers above read from the database (hooks.scrape_time_metrics).
        for receiver in hooks.scrape_time_metrics.receivers:
            try:
                families = list(receiver())
            except Exception:
                logger.warning("Could not read the metrics of %s", receiver, exc_info=True)
                continue
            yield from families


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
