"""GET /health: database, pgvector, cache and broker checks.

Only the database makes the answer 503 (the instance cannot serve anything): down, or
missing a table that requests need — the models' tables and, without REDIS_URL, the
database cache's (a database not migrated yet, or restored without them; every signed-in
request would fail). A degraded cache (Redis) or broker shows in `checks` with status
"degraded" but keeps the instance in rotation."""

import functools
import logging
import time

from django.apps import apps
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connection, router
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

logger = logging.getLogger(__name__)


@functools.cache
def _model_tables() -> frozenset[str]:
    return frozenset(
        model._meta.db_table
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy and router.allow_migrate_model("default", model)
    )


def _missing_tables() -> list[str]:
    """The tables requests need that the database lacks: one catalogue lookup per name."""
    cache_tables = {caches[alias]._table for alias in settings.CACHES if isinstance(caches[alias], DatabaseCache)}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(quote_ident(name)) IS NULL ORDER BY name",
            [sorted(_model_tables() | cache_tables)],
        )
        return [row[0] for row in cursor.fetchall()]


def _check_database() -> tuple[str, str | None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    return "ok", (row[0] if row else None)


def _check_cache() -> str:
    key = "health:probe"
    cache.set(key, time.time(), 10)
    return "ok" if cache.get(key) is not None else "degraded"


def _check_broker() -> str:
    if not settings.CELERY_BROKER_URL:
        return "in_process"
    from raptorflow.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


_check_schema = inline_serializer(
    "HealthChecks",
    {
        "database": serializers.CharField(),
        "pgvector": serializers.CharField(),
        "cache": serializers.CharField(),
        "broker": serializers.CharField(),
    },
)


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            (code, "application/json"): inline_serializer(
                f"Health{code}", {"status": serializers.CharField(), "checks": _check_schema}
            )
            for code in (200, 503)
        },
        tags=["operations"],
    )
    def get(self, request):
        checks = {}
        healthy = True
        try:
            checks["database"], version = _check_database()
            checks["pgvector"] = version or "missing"
            if missing := _missing_tables():
                logger.error("Health: tables missing (run `manage.py migrate`): %s", ", ".join(missing))
                healthy = False
                checks["database"] = "tables_missing"
        except Exception:
            healthy = False
            checks["database"] = "down"
            checks["pgvector"] = "unknown"
        try:
            checks["cache"] = _check_cache()
        except Exception:
            checks["cache"] = "degraded"
        try:
            checks["broker"] = _check_broker()
        except Exception:
            checks["broker"] = "degraded"
        if not healthy:
            status = "down"
        elif checks["pgvector"] == "missing" or "degraded" in (checks["cache"], checks["broker"]):
            status = "degraded"
        else:
            status = "ok"
        return Response({"status": status, "checks": checks}, status=200 if healthy else 503)
