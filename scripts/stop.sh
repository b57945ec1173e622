#!/usr/bin/env bash
# Stops the embedded PostgreSQL under .data/ (serve.sh stops it on exit by itself; the test
# command and management commands leave it running for the next one).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m raptorflow.embedded_db stop
