"""gunicorn settings for RaptorFlow (Cloud Run: 2 vCPU, up to 100 instances).

Threads rather than many processes: requests mostly wait on PostgreSQL and AI providers,
and each process loads the local embedding model once. Every thread holds at most one
database connection (CONN_MAX_AGE), so connections per instance = workers × threads;
see README "Scaling" for the budget at 100 instances."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Streaming replies can run long; a provider timeout ends them well before this.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = 500
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
