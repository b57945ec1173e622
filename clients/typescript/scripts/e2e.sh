#!/usr/bin/env bash
# The TypeScript client's CI step (.ci/run calls it after the Python suite): installs the
# package's locked dev dependencies, checks the committed types against the committed schema,
# builds and type-checks the package and its example, installs the `npm pack` tarball into a
# scratch project that type-checks a use of it, then runs the example against a live server
# (scripts/e2e_server.py). Needs the repository's .venv (scripts/test.sh makes it) and Node
# ≥ 18 with npm; downloads nothing but npm packages.
set -euo pipefail
PACKAGE="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="$(cd "$PACKAGE/../.." && pwd)"
cd "$PACKAGE"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "e2e: node/npm missing, installing them with apt-get" >&2
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "e2e: Node.js ≥ 18 and npm are needed (e.g. apt-get install nodejs npm)" >&2
    exit 1
  fi
fi
if [ "$(node -p 'Number(process.versions.node.split(".")[0])')" -lt 18 ]; then
  echo "e2e: Node.js ≥ 18 is needed, found $(node --version)" >&2
  exit 1
fi

SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

echo "e2e: npm ci"
npm ci --no-audit --no-fund --loglevel=error

echo "e2e: src/schema.ts matches openapi.json"
npx --no-install openapi-typescript openapi.json --output "$SCRATCH/schema.ts" --silent
if ! diff -u src/schema.ts "$SCRATCH/schema.ts" >/dev/null; then
  echo "e2e: src/schema.ts is not what openapi.json generates: run clients/typescript/scripts/generate.sh" >&2
  diff -u src/schema.ts "$SCRATCH/schema.ts" | head -40 >&2
  exit 1
fi

echo "e2e: build and type-check the package and its example"
npm run build
npm run typecheck
npm run build:examples
node --test build/test/

echo "e2e: npm pack, then a scratch project type-checks a use of the tarball"
TARBALL="$(npm pack --silent --pack-destination "$SCRATCH" | tail -1)"
mkdir "$SCRATCH/app"
cp scripts/scratch/usage.ts "$SCRATCH/app/usage.ts"
cat > "$SCRATCH/app/package.json" <<JSON
{ "name": "scratch-app", "private": true, "type": "module" }
JSON
cat > "$SCRATCH/app/tsconfig.json" <<JSON
{
  "compilerOptions": {
    "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext",
    "lib": ["ES2022", "DOM", "DOM.Iterable"], "strict": true, "noEmit": true,
    "skipLibCheck": false, "types": []
  },
  "files": ["usage.ts"]
}
JSON
(cd "$SCRATCH/app" && npm install --no-audit --no-fund --loglevel=error "$SCRATCH/$TARBALL" \
  && "$PACKAGE/node_modules/.bin/tsc" -p tsconfig.json)

echo "e2e: the example against a live server"
cd "$ROOT"
.venv/bin/python "$PACKAGE/scripts/e2e_server.py" -- node "$PACKAGE/build/examples/e2e.js"
