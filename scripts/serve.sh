#!/usr/bin/env bash
# Sets up, migrates and serves the API at http://127.0.0.1:8000 (docs at /docs) on the
# embedded defaults: embedded PostgreSQL + pgvector under .data/, database cache,
# in-process background jobs, local embedding model. No configuration needed. Ctrl-C stops
# the server and the embedded PostgreSQL it started (scripts/stop.sh stops it otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export HF_HUB_OFFLINE=1
if [ -z "${DATABASE_URL:-}" ]; then
  trap '.venv/bin/python -m raptorflow.embedded_db stop' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
fi
.venv/bin/python manage.py migrate --noinput
# Static files (docs, admin) are served by WhiteNoise from STATIC_ROOT, also with DEBUG off.
.venv/bin/python manage.py collectstatic --noinput --verbosity 0
.venv/bin/python manage.py runserver "${HOST:-127.0.0.1}:${PORT:-8000}"
