#!/usr/bin/env bash
# Sets up, migrates and serves the API at http://127.0.0.1:8000 (docs at /docs) on the
# embedded defaults: embedded PostgreSQL + pgvector under .data/, database cache,
# in-process background jobs, local embedding model. No configuration needed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/python manage.py migrate --noinput
# Static files (docs, admin) are served by WhiteNoise from STATIC_ROOT, also with DEBUG off.
.venv/bin/python manage.py collectstatic --noinput --verbosity 0
exec .venv/bin/python manage.py runserver "${HOST:-127.0.0.1}:${PORT:-8000}"
