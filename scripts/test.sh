#!/usr/bin/env bash
# Sets up and runs the whole test suite against the embedded PostgreSQL + pgvector and a
# Redis the run starts for itself on a free port (tests/redis_server.py); set TEST_REDIS_URL
# to use another Redis instead (the tests flush its databases 13-15). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
