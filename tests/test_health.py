"""`migrate` alone makes a usable database (the database cache's table comes from a
migration), /health tells a down or unmigrated database (503) from a degraded cache or
broker (200), a down Redis is a JSON 503 for signed-in requests, and / points at the docs."""

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

CACHE_TABLE = "raptorflow_cache"
CLOSED_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _table_exists(name: str) -> bool:
    return name in connection.introspection.table_names()


def _drop_cache_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE IF EXISTS "{CACHE_TABLE}"')


def _cache_table_shape() -> tuple:
    """Columns (name, type, nullable) and index definitions of the cache table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type, character_maximum_length, is_nullable FROM information_schema.columns"
            " WHERE table_name = %s ORDER BY ordinal_position",
            [CACHE_TABLE],
        )
        columns = cursor.fetchall()
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname", [CACHE_TABLE])
        indexes = [row[0] for row in cursor.fetchall()]
    return columns, indexes


def _migrate_core(target: str) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([("raptorflow", target)])


def _cache_works() -> bool:
    cache.set("health-test", "value", 30)
    return cache.get("health-test") == "value"


def test_migrate_creates_the_database_cache_table(db):
    assert _table_exists(CACHE_TABLE)
    assert _cache_works()


@pytest.mark.django_db(transaction=True)
def test_cache_table_migration_makes_what_createcachetable_makes_and_tolerates_it():
    try:
        # On a database where the table is missing, the migration creates it...
        _drop_cache_table()
        _migrate_core("0001_initial")
        _migrate_core("0002_database_cache_table")
        assert _table_exists(CACHE_TABLE)
        from_migration = _cache_table_shape()

        # ...exactly as createcachetable does (columns, primary key, the index on expires)...
        _drop_cache_table()
        call_command("createcachetable", verbosity=0)
        assert _cache_table_shape() == from_migration
        assert any("(expires)" in index for index in from_migration[1])

        # ...and where createcachetable already made it, running it again changes nothing.
        _migrate_core("0001_initial")
        assert _table_exists(CACHE_TABLE)  # unapplying keeps it: older releases use it too
        _migrate_core("0002_database_cache_table")
        assert _cache_table_shape() == from_migration
        assert _cache_works()
    finally:
        _migrate_core("0002_database_cache_table")
        call_command("createcachetable", verbosity=0)


@pytest.mark.django_db(transaction=True)
def test_health_is_503_when_the_cache_table_is_missing(anon_client):
    _drop_cache_table()
    try:
        response = anon_client.get("/health")
    finally:
        call_command("createcachetable", verbosity=0)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["checks"]["database"] == "tables_missing"
    assert anon_client.get("/health").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_health_is_503_when_a_core_table_is_missing(anon_client):
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE conversations_message RENAME TO conversations_message_away")
    try:
        response = anon_client.get("/health")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE conversations_message_away RENAME TO conversations_message")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "tables_missing"


def test_health_stays_200_and_degraded_when_redis_is_unreachable(anon_client, db, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CLOSED_REDIS}}
    settings.CELERY_BROKER_URL = CLOSED_REDIS
    response = anon_client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"] == {
        "database": "ok",
        "pgvector": body["checks"]["pgvector"],
        "cache": "degraded",
        "broker": "degraded",
    }


def test_signed_in_request_with_redis_down_is_a_json_503_with_retry_after(owner_client, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CLOSED_REDIS}}
    response = owner_client.get("/api/auth/me")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "cache_unavailable"
    assert int(response["Retry-After"]) > 0


def test_the_admin_with_redis_down_is_a_503_with_retry_after_not_a_server_error(client, settings, django_user_model):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CLOSED_REDIS}}
    django_user_model.objects.create_superuser(email="root@acme.test", password="a-long-admin-password-1")
    client.raise_request_exception = False

    # The sign-in form counts attempts in the cache.
    response = client.post("/admin/login/", {"username": "root@acme.test", "password": "a-long-admin-password-1"})

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/plain")
    assert "cache is unavailable" in response.content.decode()
    assert int(response["Retry-After"]) > 0


def test_health_answers_any_host_while_other_paths_still_refuse_it(anon_client, owner_client, settings):
    settings.ALLOWED_HOSTS = ["api.example.com"]
    # What Docker's HEALTHCHECK and Cloud Run's probes send: not the public domain.
    assert anon_client.get("/health", HTTP_HOST="127.0.0.1:8080").status_code == 200
    assert anon_client.get("/health", HTTP_HOST="raptorflow-abc123-uc.a.run.app").status_code == 200
    assert owner_client.get("/api/auth/me", HTTP_HOST="127.0.0.1:8080").status_code == 400
    assert owner_client.get("/api/auth/me", HTTP_HOST="api.example.com").status_code == 200


def test_root_answers_json_pointing_at_the_docs(anon_client, db):
    response = anon_client.get("/")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "RaptorFlow API"
    assert body["version"]
    links = (body["docs"], body["redoc"], body["schema"], body["health"])
    assert links == ("/docs", "/redoc", "/api/schema", "/health")
    for path in ("/docs", "/redoc", "/health"):
        assert anon_client.get(path).status_code == 200
