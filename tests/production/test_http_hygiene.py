"""Security headers, CORS for FRONTEND_URL only, the body limit, request ids in logs and
JSON logs without content or tokens (in-process; tests/production/test_production_server.py
checks the same against a production-mode gunicorn)."""

import json
import logging

import pytest
from django.conf import settings
from django.test import override_settings

from raptorflow.logs import JsonFormatter, scrub
from raptorflow.request_context import RequestIdLogFilter

FRONTEND = settings.FRONTEND_URL.rstrip("/")


def test_responses_carry_the_security_headers(anon_client, db):
    response = anon_client.get("/health")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert len(response["X-Request-ID"]) == 32


def test_cors_preflight_from_the_frontend_is_allowed_with_our_headers(anon_client, db):
    response = anon_client.options(
        "/api/conversations",
        HTTP_ORIGIN=FRONTEND,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, idempotency-key",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == FRONTEND
    allowed = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response


def test_cors_preflight_from_another_origin_is_refused(anon_client, db):
    response = anon_client.options(
        "/api/conversations",
        HTTP_ORIGIN="https://evil.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )
    assert "Access-Control-Allow-Origin" not in response


def test_cors_responses_expose_retry_after_and_request_id(owner_client):
    response = owner_client.get("/api/auth/me", HTTP_ORIGIN=FRONTEND)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == FRONTEND
    exposed = {h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")}
    assert {"retry-after", "x-request-id"} <= exposed


def test_a_rate_limited_answer_is_readable_by_the_frontend(owner_client):
    with override_settings(RATE_LIMITS={"user": "1/hour"}):
        owner_client.get("/api/auth/me", HTTP_ORIGIN=FRONTEND)
        response = owner_client.get("/api/auth/me", HTTP_ORIGIN=FRONTEND)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response["Retry-After"]) > 0
    assert response["Access-Control-Allow-Origin"] == FRONTEND


def test_declared_body_over_the_limit_is_a_json_413(owner_client):
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
        response = owner_client.post(
            "/api/conversations", data=json.dumps({"title": "x" * 2000, "agent_type": "strategy"}),
            content_type="application/json", HTTP_ORIGIN=FRONTEND,
        )
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "payload_too_large",
        "message": "The request body is larger than 1000 bytes.",
        "limit": 1000,
    }
    # CORS headers too, so the browser lets the client read why.
    assert response["Access-Control-Allow-Origin"] == FRONTEND


def test_body_under_the_limit_is_served(owner_client):
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
        response = owner_client.post("/api/conversations", {"title": "Short", "agent_type": "strategy"}, format="json")
    assert response.status_code == 201


@pytest.fixture
def json_log_lines():
    """Everything logged during the test, formatted as production formats it."""
    lines: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = ListHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdLogFilter())
    loggers = [logging.getLogger(), logging.getLogger("django")]
    for logger in loggers:
        logger.addHandler(handler)
    yield lines
    for logger in loggers:
        logger.removeHandler(handler)


def test_log_lines_are_json_with_the_request_id_and_no_token(anon_client, db, json_log_lines):
    token = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiYWJjIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    response = anon_client.get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_X_REQUEST_ID="req-log-1")
    assert response.status_code == 401

    records = [json.loads(line) for line in json_log_lines]
    unauthorized = [r for r in records if r["logger"] == "django.request"]
    assert unauthorized, records
    assert unauthorized[0]["request_id"] == "req-log-1"
    assert unauthorized[0]["severity"] == "WARNING"
    assert unauthorized[0]["status_code"] == 401
    assert all(token not in line for line in json_log_lines)


def test_posted_content_never_reaches_the_logs(owner_client, json_log_lines):
    conversation = owner_client.post("/api/conversations", {"title": "Plans", "agent_type": "strategy"}, format="json")
    secret_content = "CONFIDENTIAL launch date is March 3rd"
    response = owner_client.post(
        f"/api/conversations/{conversation.json()['id']}/messages",
        {"role": "user", "content": secret_content, "bogus": 1},
        format="json",
    )
    assert response.status_code == 400  # a 4xx is logged by django.request
    assert json_log_lines
    assert all(secret_content not in line for line in json_log_lines)
    assert all(owner_client.tokens["access"] not in line for line in json_log_lines)


def test_unexpected_errors_are_logged_with_traceback_but_credentials_masked():
    formatter = JsonFormatter()
    try:
        raise RuntimeError("provider said: invalid key sk-proj-abcdefghijklmnopqrstuvwx for Bearer abc.def.ghi")
    except RuntimeError:
        import sys

        record = logging.LogRecord("raptorflow", logging.ERROR, __file__, 1, "call failed", None, sys.exc_info())
    line = json.loads(formatter.format(record))
    assert "RuntimeError" in line["exception"]
    assert "abcdefghijklmnopqrstuvwx" not in line["exception"]
    assert "abc.def.ghi" not in line["exception"]


@pytest.mark.parametrize(
    "secret",
    [
        "Authorization: Bearer abc123xyz",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-part_123",
        "key=rzp_live_ABCdef123456",
        "password=hunter2hunter2",
        "sk-or-v1-0123456789abcdef0123",
    ],
)
def test_scrub_masks_credentials(secret):
    masked = scrub(f"something went wrong: {secret} end")
    assert "redacted" in masked
    assert masked.endswith(" end")
    for part in ("abc123xyz", "sig-part_123", "ABCdef123456", "hunter2hunter2", "0123456789abcdef0123"):
        assert part not in masked
