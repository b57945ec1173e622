#!/usr/bin/env bash
# Regenerates the client's types from the server's schema as it is now: openapi.json
# (manage.py spectacular) and src/schema.ts (openapi-typescript). Run after any change to an
# endpoint or serializer, and commit both files: CI fails while they differ from the server.
set -euo pipefail
PACKAGE="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="$(cd "$PACKAGE/../.." && pwd)"
cd "$ROOT"
HF_HUB_OFFLINE=1 .venv/bin/python manage.py spectacular --format openapi-json --validate --fail-on-warn \
  --file "$PACKAGE/openapi.json"
cd "$PACKAGE"
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
npx --no-install openapi-typescript openapi.json --output src/schema.ts
