"""Health, production start-up rules, JSON errors everywhere under /api/, the schema."""

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connections
from django.test import override_settings
from django.urls import path

ROOT = Path(__file__).resolve().parent.parent


def test_health_reports_every_check(anon_client, db):
    response = anon_client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["pgvector"].startswith("0.8")
    assert body["checks"]["cache"] == "ok"
    assert body["checks"]["broker"] == "in_process"


def test_health_is_503_when_the_database_is_down(anon_client, transactional_db):
    connection = connections["default"]
    original_host = connection.settings_dict["OPTIONS"].get("host")
    connection.close()
    connection.settings_dict["OPTIONS"]["host"] = "/nonexistent/socket/dir"
    try:
        response = anon_client.get("/health")
    finally:
        connection.close()
        connection.settings_dict["OPTIONS"]["host"] = original_host
    assert response.status_code == 503
    assert response.json()["status"] == "down"
    assert response.json()["checks"]["database"] == "down"


def test_health_shows_a_down_broker_as_degraded_but_stays_200(anon_client, db, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = anon_client.get("/health")
    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == "degraded"
    assert response.json()["status"] == "degraded"


def _manage(*args, env_overrides: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("APP_MODE", "ENVIRONMENT", "RAPTORFLOW_TESTING")}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _production_env() -> dict:
    settings_dict = connections["default"].settings_dict
    database_url = f"postgresql://postgres@/{settings_dict['NAME']}?host={settings_dict['OPTIONS'].get('host', '')}"
    return {
        "ENVIRONMENT": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_SECRET_KEY": secrets.token_urlsafe(50),
        "ENCRYPTION_KEY": secrets.token_urlsafe(32),
        "DATABASE_URL": database_url,
        "ALLOWED_HOSTS": "api.raptorflow.example",
    }


def test_check_deploy_passes_with_production_settings(db):
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env_overrides=_production_env())
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("missing", ["JWT_SECRET_KEY", "DJANGO_SECRET_KEY", "DATABASE_URL"])
def test_production_start_up_stops_naming_a_missing_secret(db, missing):
    env = _production_env()
    env[missing] = ""
    result = _manage("check", env_overrides=env)
    assert result.returncode != 0
    # One clear line, not a traceback with the useful part last.
    assert result.stderr.strip().splitlines() == [
        f"RaptorFlow cannot start in production mode: set {missing} in the environment (see .env.example)."
    ]


# --- JSON errors under /api/ ------------------------------------------------------------


def test_unknown_api_route_is_json_404(anon_client, db):
    response = anon_client.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_trailing_slash_is_not_served(owner_client):
    assert owner_client.get("/api/auth/me/").status_code == 404


def test_malformed_json_is_400_json(owner_client):
    response = owner_client.post("/api/auth/logout", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_unsupported_media_type_is_415_json(owner_client):
    response = owner_client.post("/api/auth/logout", data="refresh=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_wrong_method_is_405_json(owner_client):
    response = owner_client.put("/api/auth/me", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def _explode(request):
    raise RuntimeError("secret internals")


urlpatterns = [path("api/explode", _explode)]


@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_unexpected_exception_is_json_500_without_traceback(db):
    from django.test import Client

    response = Client(raise_request_exception=False).get("/api/explode")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "server_error", "message": "Internal server error."}}
    assert b"secret internals" not in response.content


def test_every_response_carries_a_request_id(anon_client, db):
    response = anon_client.get("/health", HTTP_X_REQUEST_ID="lb-abc-123")
    assert response["X-Request-ID"] == "lb-abc-123"
    assert len(anon_client.get("/health")["X-Request-ID"]) == 32


def test_schema_and_docs_are_served(anon_client, db):
    schema = anon_client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/auth/google/callback" in schema.json()["paths"]
    assert anon_client.get("/docs").status_code == 200
    assert anon_client.get("/redoc").status_code == 200


def test_the_embedded_server_can_be_stopped_and_says_so():
    import psycopg

    from raptorflow.embedded_db import embedded_database_url, stop_embedded_server

    data_dir = ROOT / ".data" / f"stop-test-{secrets.token_hex(4)}" / "pg"
    try:
        url = embedded_database_url(data_dir)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)

        assert stop_embedded_server(data_dir) is True

        assert not (data_dir / "postmaster.pid").exists()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2)
        assert stop_embedded_server(data_dir) is False
    finally:
        stop_embedded_server(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def test_env_example_is_valid_shell_that_exports_its_values():
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail; set -a; . ./.env.example; set +a; env"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    exported = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert exported["DEFAULT_FROM_EMAIL"] == "RaptorFlow <no-reply@raptorflow.local>"
    assert exported["NUM_PROXIES"] == "0"
    assert exported["RATE_LIMIT_USER"] == "600/min"


def test_production_starts_with_rotated_encryption_keys_in_place_of_encryption_key(db):
    env = _production_env()
    env["ENCRYPTION_KEY"] = ""
    env["ENCRYPTION_KEYS"] = f"{secrets.token_urlsafe(32)},{secrets.token_urlsafe(32)}"

    result = _manage("check", env_overrides=env)

    assert result.returncode == 0, result.stdout + result.stderr
