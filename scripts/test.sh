#!/usr/bin/env bash
# Sets up and runs the whole test suite against the embedded PostgreSQL + pgvector and the
# local Redis (127.0.0.1:6379, database 15). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export HF_HUB_OFFLINE=1
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
exec .venv/bin/python -m pytest "$@"
