"""A production-mode gunicorn (ENVIRONMENT=production, two workers, gunicorn.conf.py) set
up as behind Cloud Run's front end (NUM_PROXIES=1, FORWARDED_ALLOW_IPS=*, as cloudbuild.yaml
sets them): HTTPS redirect and HSTS, the security headers, /metrics behind METRICS_TOKEN and merged
across workers, JSON log lines with request ids and no credentials."""

import json
import secrets

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.production.conftest import gunicorn_server, process_env, request

METRICS_TOKEN = secrets.token_urlsafe(24)
HTTPS = {"X-Forwarded-Proto": "https"}


@pytest.fixture(scope="module")
def prod_server(django_db_setup, django_db_blocker):
    env = process_env(
        ENVIRONMENT="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        JWT_SECRET_KEY=secrets.token_urlsafe(50),
        ENCRYPTION_KEY=secrets.token_urlsafe(32),
        ALLOWED_HOSTS="127.0.0.1",
        METRICS_TOKEN=METRICS_TOKEN,
        FRONTEND_URL="https://app.raptorflow.example",
        NUM_PROXIES="1",
        FORWARDED_ALLOW_IPS="*",
    )
    with gunicorn_server(env, workers=2, threads=2) as server:
        yield server


def test_plain_http_is_redirected_to_https_except_health(prod_server):
    status, headers, _ = request(prod_server.port, "GET", "/api/auth/me")
    assert status == 301
    assert headers["location"].startswith("https://127.0.0.1")
    # Cloud Run's probes reach /health over plain HTTP.
    assert request(prod_server.port, "GET", "/health")[0] == 200


def test_https_responses_carry_hsts_and_the_security_headers(prod_server):
    status, headers, _ = request(prod_server.port, "GET", "/health", headers=HTTPS)
    assert status == 200
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert headers["x-frame-options"] == "DENY"
    assert len(headers["x-request-id"]) == 32


def test_api_errors_are_json_in_production(prod_server):
    status, headers, body = request(prod_server.port, "GET", "/api/no-such-route", headers=HTTPS)
    assert status == 404
    assert body == {"error": {"code": "not_found", "message": "Not found."}}


def test_cors_allows_only_the_configured_frontend(prod_server):
    preflight = {**HTTPS, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    _, allowed, _ = request(prod_server.port, "OPTIONS", "/api/conversations",
                            headers={**preflight, "Origin": "https://app.raptorflow.example"})
    _, refused, _ = request(prod_server.port, "OPTIONS", "/api/conversations",
                            headers={**preflight, "Origin": "http://localhost:3000"})
    assert allowed["access-control-allow-origin"] == "https://app.raptorflow.example"
    assert "access-control-allow-origin" not in refused


def test_metrics_need_the_metrics_token(prod_server):
    status, headers, body = request(prod_server.port, "GET", "/metrics", headers=HTTPS)
    assert status == 401
    assert body["error"]["code"] == "not_authenticated"
    status, _, body = request(prod_server.port, "GET", "/metrics", headers={**HTTPS, "Authorization": "Bearer wrong"})
    assert status == 403


def _health_requests_counted(port) -> float:
    status, _, raw = request(port, "GET", "/metrics", headers={**HTTPS, "Authorization": f"Bearer {METRICS_TOKEN}"})
    assert status == 200
    total = 0.0
    for family in text_string_to_metric_families(raw.decode()):
        for sample in family.samples:
            if (sample.name == "django_http_responses_total_by_status_view_method_total"
                    and sample.labels.get("view") == "health"):
                total += sample.value
    return total


def test_metrics_add_up_the_requests_of_every_worker(prod_server):
    before = _health_requests_counted(prod_server.port)
    for _ in range(30):
        assert request(prod_server.port, "GET", "/health", headers=HTTPS)[0] == 200
    # Whichever worker answers the scrape, it reports what both workers served.
    assert _health_requests_counted(prod_server.port) - before == 30
    assert _health_requests_counted(prod_server.port) - before == 30


def test_logs_are_json_lines_with_request_ids_and_no_credentials(prod_server):
    token = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoieCJ9.not-a-real-signature-123"
    status, _, _ = request(
        # A query parameter the endpoint takes (an unknown one would be refused before auth).
        prod_server.port, "GET", "/api/conversations/search/by-title?q=secret-query-text",
        headers={**HTTPS, "Authorization": f"Bearer {token}", "X-Request-ID": "prod-log-check-1"},
    )
    assert status == 401

    # gunicorn writes its access line just after the response went out.
    log = prod_server.wait_for_log('"request_id": "prod-log-check-1", "method"')
    lines = [line for line in log.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    ours = [r for r in records if r.get("request_id") == "prod-log-check-1"]
    assert {r["logger"] for r in ours} >= {"django.request", "gunicorn.access"}
    access = next(r for r in ours if r["logger"] == "gunicorn.access")
    assert (access["method"], access["path"], access["status_code"]) == (
        "GET",
        "/api/conversations/search/by-title",
        401,
    )
    assert token not in log
    assert "secret-query-text" not in log


def test_each_worker_loads_the_embedding_model_as_it_starts(prod_server):
    """gunicorn's post_worker_init loads the local model in every worker before the worker
    accepts connections, so the first searches of a new instance do not queue behind it."""
    log = prod_server.wait_for_log("ready in")
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    ready = [r for r in records if r.get("logger") == "search.providers" and "ready in" in r["message"]]
    booted = [r for r in records if "Booting worker" in r.get("message", "")]
    assert len(booted) == 2
    assert len(ready) == 2, ready
    assert all("all-MiniLM-L6-v2-int8" in r["message"] for r in ready)
