"""Nothing fails open: a production server trusts no forwarded header unless a proxy is
configured, refuses to start without its secrets (in one line), and the embedded default
runs on random secrets of its own, generated once and kept private."""

import json
import os
import secrets
import stat
import subprocess
import sys
import uuid

import pytest
from django.db import connection

from raptorflow.local_secrets import NAMES, local_secrets
from raptorflow.models import AuditLog
from tests.production.conftest import ROOT, free_port, gunicorn_server, process_env, request

PRODUCTION_SECRETS = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "JWT_SECRET_KEY": secrets.token_urlsafe(50),
    "ENCRYPTION_KEY": secrets.token_urlsafe(32),
}


def direct_env(**overrides) -> dict:
    """Production mode as a server reachable directly (compose publishes its port): no
    NUM_PROXIES, no FORWARDED_ALLOW_IPS."""
    env = process_env(ENVIRONMENT="production", ALLOWED_HOSTS="127.0.0.1", **PRODUCTION_SECRETS, **overrides)
    env.pop("NUM_PROXIES", None)
    env.pop("FORWARDED_ALLOW_IPS", None)
    return env


@pytest.fixture(scope="module")
def direct_server(django_db_setup, django_db_blocker):
    # Plain HTTP served as such (compose's local setup), so requests reach the throttles.
    env = direct_env(SECURE_SSL_REDIRECT="false", RATE_LIMIT_AUTH_IP="3/min", AUDIT_REJECTED_CREDENTIAL_WINDOW="1")
    with gunicorn_server(env, workers=1, threads=2) as server:
        yield server


def test_a_clients_forwarded_proto_does_not_skip_the_https_redirect(django_db_setup):
    with gunicorn_server(direct_env(), workers=1, threads=1) as server:
        status, headers, _ = request(server.port, "GET", "/api/auth/me", headers={"X-Forwarded-Proto": "https"})

    assert status == 301
    assert headers["location"].startswith("https://")


def test_a_clients_forwarded_for_does_not_choose_its_rate_limit_identity(direct_server):
    # Each request claims another address; all count against the one that connected.
    statuses = [
        request(
            direct_server.port,
            "POST",
            "/api/auth/verify-token",
            body={"token": "not-a-token"},
            headers={"X-Forwarded-For": f"198.51.100.{n}"},
        )[0]
        for n in range(1, 6)
    ]

    assert 429 in statuses
    assert statuses.index(429) <= 3


@pytest.mark.django_db(transaction=True)
def test_a_clients_forwarded_for_is_not_the_audited_ip(direct_server):
    # Rejected credentials are audited once per IP per window, kept in the database cache
    # that every server of this run shares: an earlier test's server (a 60 s window) or this
    # module's (1 s, kept to the whole second) may still hold 127.0.0.1's. Start without one.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM raptorflow_cache WHERE cache_key LIKE %s", ["%audit:%"])
    request_id = uuid.uuid4().hex
    status, _, _ = request(
        direct_server.port,
        "GET",
        "/api/auth/me",
        headers={
            "Authorization": "Bearer forged",
            "X-Forwarded-For": "203.0.113.66",
            "X-Request-ID": request_id,
        },
    )
    assert status == 401
    entry = AuditLog.objects.get(request_id=request_id)
    assert entry.ip_address == "127.0.0.1"


@pytest.mark.parametrize("missing", ["JWT_SECRET_KEY", "ALLOWED_HOSTS"])
def test_gunicorn_refuses_to_start_without_a_secret_in_one_line(missing, django_db_setup):
    env = process_env(ENVIRONMENT="production", ALLOWED_HOSTS="api.raptorflow.example", **PRODUCTION_SECRETS)
    env[missing] = ""
    env["GUNICORN_BIND"] = f"127.0.0.1:{free_port()}"

    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "raptorflow.wsgi:application"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines == [
        f"RaptorFlow cannot start in production mode: set {missing} in the environment (see .env.example)."
    ]


# --- the embedded default's own secrets ------------------------------------------------


def test_local_secrets_are_generated_once_private_and_reused(tmp_path):
    path = tmp_path / "data" / "secrets.json"

    first = local_secrets(path)
    again = local_secrets(path)

    assert set(first) == set(NAMES)
    assert all(len(value) >= 50 for value in first.values())
    assert len(set(first.values())) == 3
    assert again == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local_secrets(tmp_path / "other" / "secrets.json") != first


_PRINT_SECRETS = (
    "import json, sys; from pathlib import Path; from raptorflow.local_secrets import local_secrets; "
    "print(json.dumps(local_secrets(Path(sys.argv[1]))))"
)


def test_processes_starting_together_agree_on_one_set_of_secrets(tmp_path):
    path = tmp_path / "secrets.json"
    processes = [
        subprocess.Popen([sys.executable, "-c", _PRINT_SECRETS, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    results = [json.loads(process.communicate(timeout=60)[0]) for process in processes]

    assert all(result == results[0] for result in results)
    assert json.loads(path.read_text()) == results[0]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".secrets-")]


def test_the_embedded_default_signs_with_its_generated_secrets(settings):
    kept = json.loads((ROOT / ".data" / "secrets.json").read_text())
    # A value given in the environment wins over the generated one.
    expected = {name: os.environ.get(name) or kept[name] for name in NAMES}

    in_use = {
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "JWT_SECRET_KEY": settings.SIMPLE_JWT["SIGNING_KEY"],
        "ENCRYPTION_KEY": settings.ENCRYPTION_KEY,
    }
    assert in_use == expected
    assert settings.DEBUG is False


def test_no_secret_value_is_written_in_the_source():
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in tracked.stdout.split():
        text = (ROOT / name).read_text(errors="replace")
        assert "dev-insecure" not in text or name.startswith("tests/"), name
