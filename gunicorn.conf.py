"""gunicorn settings for RaptorFlow (Cloud Run: 2 vCPU, up to 100 instances).

Threads rather than many processes: requests mostly wait on PostgreSQL and AI providers,
and each process loads the local embedding model once. Without a pool every thread holds
at most one database connection, so connections per instance = workers × threads (2 × 4
= 8; 800 at 100 instances); DB_POOL_MAX_SIZE caps it per process instead (README
"Scaling" has the whole budget).

Metrics: with several worker processes each one keeps its own counters, so the
Prometheus client runs in multiprocess mode — every process writes its samples to files
in PROMETHEUS_MULTIPROC_DIR and /metrics merges them. The directory is set here, before
the application (and prometheus_client) is imported, emptied when gunicorn starts, and a
dead worker's live gauges are dropped.
"""

import os
import shutil
import sys
import tempfile

# --- sockets and processes ------------------------------------------------------------
bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Streaming replies can run long; a provider timeout (PROVIDER_TIMEOUT_SECONDS) ends them
# well before this. Cloud Run's request timeout (--timeout) is the outer bound.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
# Cloud Run sends SIGTERM and allows 10 s before SIGKILL.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "8"))
# Longer than Cloud Run's front end keeps idle connections open, so it closes them first.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
# Recycling workers bounds slow memory growth (the embedding model, allocator fragmentation).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = 500
# Requests line and headers: generous but bounded (bodies are limited by MAX_REQUEST_BYTES).
limit_request_line = 8190
limit_request_fields = 100
# Addresses whose X-Forwarded-* headers gunicorn believes: none unless configured. Cloud Run
# (cloudbuild.yaml) sets "*" — only Google's front end can reach the container — with
# NUM_PROXIES=1 for the app; a server reachable directly must not trust what clients send.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")

# --- logs -----------------------------------------------------------------------------
# The access log never includes the query string (search queries, OAuth codes) or the
# referrer. In production (or LOG_FORMAT=json) gunicorn's own lines are JSON like the
# app's (raptorflow/logs.py), the access line carrying the response's X-Request-ID.
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
errorlog = "-"
access_log_format = "%(m)s %(U)s %(s)s %(B)s %(M)sms %({x-request-id}o)s"
# Secrets in paths (an invitation's token in /api/invitations/<token>/accept) are redacted.
logger_class = "raptorflow.logs.GunicornLogger"
_production = (
    os.environ.get("APP_MODE", "").lower() == "prod" or os.environ.get("ENVIRONMENT", "").lower() == "production"
)
# A missing production secret stops the server here, in one line, before it logs anything
# or boots a worker (a worker exiting at boot would only be restarted, again and again).
if _production:
    from raptorflow.env import PRODUCTION_REQUIRED, missing_configuration_message, missing_in_production

    if _missing := missing_in_production(PRODUCTION_REQUIRED):
        sys.stderr.write(missing_configuration_message(_missing) + "\n")
        sys.exit(1)

if (os.environ.get("LOG_FORMAT") or ("json" if _production else "plain")) == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "raptorflow.logs.JsonFormatter"}},
        "handlers": {
            "error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
            "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "gunicorn.error": {"handlers": ["error_console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }

# --- Prometheus multiprocess mode -----------------------------------------------------
_metrics_dir_owned = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _metrics_dir_owned:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="raptorflow-metrics-")


def on_starting(server):
    # Samples left by a previous run in a reused directory would be merged with ours.
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            os.unlink(path)


def post_worker_init(worker):
    # The embedding model is loaded before the worker takes its first request, not by it.
    from search.providers import warm_up_active_provider

    warm_up_active_provider()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _metrics_dir_owned:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
