# syntax=docker/dockerfile:1
# RaptorFlow API image: gunicorn on Python 3.11, non-root, with a health check.
# Build: docker build -t raptorflow-api .   (no Docker engine runs on the development
# machines; this file is kept correct by reading and by hadolint.)

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch from the PyTorch CPU index first: the default index would bring a multi-GB CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY requirements.txt /tmp/requirements.txt
RUN grep -v '^torch==' /tmp/requirements.txt > /tmp/requirements-notorch.txt \
    && pip install -r /tmp/requirements-notorch.txt

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    DJANGO_SETTINGS_MODULE=raptorflow.settings \
    PORT=8080
RUN groupadd --system --gid 10001 raptorflow && useradd --system --uid 10001 --gid raptorflow --home-dir /app --shell /usr/sbin/nologin raptorflow
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=raptorflow:raptorflow . /app
RUN DJANGO_SECRET_KEY=collectstatic-only DATABASE_URL=postgresql://build@localhost/build \
    python manage.py collectstatic --noinput
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8080\")}/health', timeout=4)"]
# Migrations are a deploy step (see README), not part of container start.
CMD ["gunicorn", "--config", "gunicorn.conf.py", "raptorflow.wsgi:application"]
