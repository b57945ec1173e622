# syntax=docker/dockerfile:1
# RaptorFlow API image: gunicorn on Python 3.11, non-root, with a health check.
# Build: docker build -t raptorflow-api .   (no Docker engine runs on the development
# machines; this file is kept correct by reading and by hadolint.)

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The runtime's packages only: no torch (local embeddings run on ONNX Runtime).
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

# The only stage with torch: exports the shipped MiniLM weights to ONNX (fp32 and int8,
# search/onnx_export.py, deterministic). Only its /models reaches the runtime stage.
FROM build AS export
# torch from the PyTorch CPU index first: the default index would bring a multi-GB CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY requirements-export.txt /tmp/requirements-export.txt
RUN grep -v '^torch==' /tmp/requirements-export.txt > /tmp/requirements-export-notorch.txt \
    && pip install -r /tmp/requirements-export-notorch.txt
COPY search/onnx_export.py /export/onnx_export.py
RUN HF_HUB_OFFLINE=1 python /export/onnx_export.py --out /models

FROM python:3.11-slim-bookworm AS runtime
# Production mode unless a developer explicitly runs the image with APP_MODE=dev: it refuses
# to start without its secrets (DJANGO_SECRET_KEY, JWT_SECRET_KEY, ENCRYPTION_KEY,
# DATABASE_URL, ALLOWED_HOSTS) instead of running on development defaults.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    DJANGO_SETTINGS_MODULE=raptorflow.settings \
    APP_MODE=prod \
    PORT=8080
RUN groupadd --system --gid 10001 raptorflow && useradd --system --uid 10001 --gid raptorflow --home-dir /app --shell /usr/sbin/nologin raptorflow
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=raptorflow:raptorflow . /app
# The exported embedding models, where the local provider looks (LOCAL_EMBEDDING_MODELS_DIR).
COPY --from=export /models /app/.data/models
# The venv came from the build stage, never from the export stage: fail the build if torch got in.
RUN python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)"
# Hashed, compressed static files (docs, admin) in STATIC_ROOT, served by WhiteNoise from
# the image. Placeholder settings only: collectstatic reaches no database and no secret, and
# production mode wants every one of them set (tests/production/test_static_files.py runs
# this very line).
RUN DJANGO_SECRET_KEY=collectstatic-only JWT_SECRET_KEY=collectstatic-only ENCRYPTION_KEY=collectstatic-only \
    DATABASE_URL=postgresql://build@localhost/build ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput
USER 10001:10001
EXPOSE 8080
# /health answers any Host, so the probe passes whatever ALLOWED_HOSTS says (scripts/healthcheck.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "scripts/healthcheck.py"]
# Migrations are a deploy step (see README), not part of container start.
CMD ["gunicorn", "--config", "gunicorn.conf.py", "raptorflow.wsgi:application"]
