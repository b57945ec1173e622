"""Secrets stay out of the logs of a real gunicorn (gunicorn.conf.py): an invitation's token
in /api/invitations/<token>/accept is redacted from gunicorn's access line and from
Django's request log line, in the development (plain) format and in production (JSON)."""

import json
import secrets
import time

import pytest

from tests.production.conftest import gunicorn_server, process_env, request

HTTPS = {"X-Forwarded-Proto": "https"}


def production_env() -> dict:
    return process_env(
        ENVIRONMENT="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        JWT_SECRET_KEY=secrets.token_urlsafe(50),
        ENCRYPTION_KEY=secrets.token_urlsafe(32),
        ALLOWED_HOSTS="127.0.0.1",
        NUM_PROXIES="1",
        FORWARDED_ALLOW_IPS="*",
    )


@pytest.mark.parametrize("mode", ["plain", "json"])
def test_an_invitation_token_in_a_path_is_redacted_from_the_logs(django_db_setup, mode):
    env = production_env() if mode == "json" else process_env(LOG_FORMAT="plain")
    token = secrets.token_urlsafe(32)
    request_id = f"invitation-log-{mode}"

    with gunicorn_server(env, workers=1, threads=1) as server:
        status, _, _ = request(
            server.port,
            "POST",
            f"/api/invitations/{token}/accept",
            headers={**HTTPS, "X-Request-ID": request_id},
        )
        assert status == 401
        # gunicorn writes its access line just after the response went out (in JSON, after
        # django.request's own 401 record, which also carries the status).
        log = server.wait_for_log(
            "/api/invitations/[redacted]/accept 401" if mode == "plain" else '"logger": "gunicorn.access"'
        )
        if mode == "json":
            deadline = time.monotonic() + 15
            while not any(
                request_id in line and '"logger": "gunicorn.access"' in line for line in log.splitlines()
            ) and time.monotonic() < deadline:
                time.sleep(0.1)
                log = server.log()

    assert token not in log
    lines = [line for line in log.splitlines() if request_id in line]
    if mode == "json":
        records = [json.loads(line) for line in lines]
        access = next(r for r in records if r["logger"] == "gunicorn.access")
        assert (access["method"], access["path"]) == ("POST", "/api/invitations/[redacted]/accept")
        django_line = next(r for r in records if r["logger"] == "django.request")
        assert "/api/invitations/[redacted]/accept" in django_line["message"]
    else:
        assert any(line.startswith("POST /api/invitations/[redacted]/accept 401") for line in lines), lines
        assert any("django.request" in line and "/api/invitations/[redacted]/accept" in line for line in lines), lines
