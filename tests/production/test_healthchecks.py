"""The health checks pass where they run, with ALLOWED_HOSTS set to the public domain only:
the Dockerfile's HEALTHCHECK and compose's healthcheck (their very commands, against a
production-mode gunicorn) and Cloud Run's probes (plain HTTP, the instance's own Host) — and
fail when the server is down."""

import os
import secrets
import subprocess
import sys

import pytest

from tests.production.conftest import ROOT, free_port, gunicorn_server, process_env, request
from tests.production.deploy_files import cloudbuild_steps, compose, dockerfile_env, dockerfile_healthcheck

PUBLIC_HOST = "api.example.com"


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    env = process_env(
        **dockerfile_env(),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        JWT_SECRET_KEY=secrets.token_urlsafe(50),
        ENCRYPTION_KEY=secrets.token_urlsafe(32),
        ALLOWED_HOSTS=PUBLIC_HOST,
    )
    with gunicorn_server(env, workers=1, threads=2) as server:
        yield server


def run_check(command: list[str], port: int) -> subprocess.CompletedProcess:
    """Runs a container health check command here: `python` is this interpreter, the working
    directory the image's WORKDIR (the project), PORT the server's."""
    if command[0] == "CMD":  # compose's exec form
        command = command[1:]
    assert command[0] == "python"
    env = {**os.environ, **dockerfile_env(), "ALLOWED_HOSTS": PUBLIC_HOST, "PORT": str(port)}
    return subprocess.run([sys.executable, *command[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)


def compose_healthcheck() -> list[str]:
    return compose()["services"]["api"]["healthcheck"]["test"]


def test_the_server_refuses_hosts_outside_allowed_hosts(server):
    assert request(server.port, "GET", "/api/auth/me", headers={"X-Forwarded-Proto": "https"})[0] == 400


@pytest.mark.parametrize("check", [dockerfile_healthcheck, compose_healthcheck], ids=["dockerfile", "compose"])
def test_container_health_check_passes_while_the_server_is_up(server, check):
    result = run_check(check(), server.port)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("check", [dockerfile_healthcheck, compose_healthcheck], ids=["dockerfile", "compose"])
def test_container_health_check_fails_when_nothing_answers(check):
    result = run_check(check(), free_port())
    assert result.returncode != 0


def test_cloud_run_probes_reach_health_over_plain_http_with_the_service_host(server):
    deploy = cloudbuild_steps()["deploy"]["args"][-1]
    for flag in ("--startup-probe", "--liveness-probe"):
        probe = deploy.split(flag, 1)[1].split()[0].strip('"')
        settings = dict(item.split("=", 1) for item in probe.split(","))
        path = settings["httpGet.path"]
        assert path == "/health"
        # Cloud Run probes the container directly: plain HTTP, a Host that is not the public domain.
        for host in ("raptorflow-abc123-uc.a.run.app", f"127.0.0.1:{server.port}"):
            status, _, body = request(server.port, "GET", path, headers={"Host": host})
            assert status == 200, body
            assert body["status"] in ("ok", "degraded")
