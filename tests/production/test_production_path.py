"""The production path as a deployer runs it, end to end: a fresh database on which
`migrate` (the command of cloudbuild.yaml's migrate job) is the only deploy step; production
mode with its secrets and the environment cloudbuild.yaml's deploy step sets (behind Cloud
Run's front end: NUM_PROXIES, FORWARDED_ALLOW_IPS; requests arrive with X-Forwarded-Proto:
https and a public Host); static files collected by the Dockerfile's own line; the image's
command (gunicorn with gunicorn.conf.py). Then: `check --deploy` has nothing to say, the
image's HEALTHCHECK passes, /docs renders with every asset, and an operator's token
creates, lists and finds a conversation's message by semantic search. Once without Redis
(database cache, in-process jobs) and once with REDIS_URL (and a Celery worker, as the
README deploys one)."""

import re
import secrets
import shlex
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import psycopg
import pytest
import yaml
from django.db import connections

from tests.production.conftest import ROOT, flushed_redis, gunicorn_server, process_env, request
from tests.production.deploy_files import cloudbuild_steps, dockerfile_env, dockerfile_healthcheck
from tests.production.test_celery_worker import celery_worker
from tests.production.test_static_files import assets_of
from tests.redis_server import redis_url

HOST = "api.raptorflow.example"
HTTPS = {"Host": HOST, "X-Forwarded-Proto": "https"}


def cloudbuild_deploy_env(**substitutions: str) -> dict[str, str]:
    """The --set-env-vars of cloudbuild.yaml's deploy step, its substitutions filled in."""
    build = cloudbuild_steps()
    values = {**yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())["substitutions"], **substitutions}
    script = build["deploy"]["args"][-1]
    (assignments,) = re.findall(r'--set-env-vars "([^"]+)"', script)
    for name, value in values.items():
        assignments = assignments.replace("${" + name + "}", str(value))
    assert "${" not in assignments, assignments
    return dict(item.split("=", 1) for item in assignments.split(","))


def cloudbuild_migrate_command() -> list[str]:
    script = cloudbuild_steps()["migrate"]["args"][-1]
    command = re.search(r"--command (\S+)", script).group(1)
    args = re.search(r"--args (\S+)", script).group(1).split(",")
    return [command, *args]


@contextmanager
def fresh_database():
    """An empty database on the test run's PostgreSQL server, dropped afterwards."""
    settings_dict = connections["default"].settings_dict
    host = settings_dict["OPTIONS"].get("host") or settings_dict.get("HOST", "")
    user = settings_dict.get("USER") or "postgres"
    name = f"raptorflow_deploy_{uuid.uuid4().hex[:10]}"
    maintenance = f"postgresql://{user}@/postgres?host={host}"
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{user}@/{name}?host={host}"
    finally:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def production_env(database_url: str, static_root, **extra: str) -> dict:
    env = process_env(
        **{
            **dockerfile_env(),
            **cloudbuild_deploy_env(_ALLOWED_HOSTS=HOST, _FRONTEND_URL="https://app.raptorflow.example"),
        },
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        JWT_SECRET_KEY=secrets.token_urlsafe(50),
        ENCRYPTION_KEY=secrets.token_urlsafe(32),
        METRICS_TOKEN=secrets.token_urlsafe(24),
        DATABASE_URL=database_url,
        STATIC_ROOT=str(static_root),
        **extra,
    )
    assert env["APP_MODE"] == "prod" and env["NUM_PROXIES"] == "1" and env["FORWARDED_ALLOW_IPS"] == "*"
    env.pop("BACKGROUND_JOBS_EAGER", None)
    return env


@contextmanager
def jobs_runner(env: dict, with_redis: bool):
    if not with_redis:
        yield None  # in-process background jobs, inside gunicorn
        return
    with celery_worker(env, f"deploy-{uuid.uuid4().hex[:6]}") as worker:
        yield worker


def api(port: int, method: str, path: str, token: str, body=None):
    return request(port, method, path, body=body, headers={**HTTPS, "Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("with_redis", [False, True], ids=["database-cache", "redis"])
@pytest.mark.django_db(transaction=True)
def test_a_fresh_production_deployment_works_the_first_time(with_redis, static_root):
    extra = {}
    if with_redis:
        extra = {"REDIS_URL": redis_url(13)}
    with flushed_redis(13), fresh_database() as database_url:
        env = production_env(database_url, static_root, **extra)

        # The only deploy step: cloudbuild.yaml's migrate job.
        command = cloudbuild_migrate_command()
        assert command[:2] == ["python", "manage.py"], command
        migrated = manage(env, *command[2:])
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr

        checked = manage(env, "check", "--deploy", "--fail-level", "WARNING")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "System check identified no issues (0 silenced)." in checked.stdout

        issued = manage(env, "issue_token", "ops@raptorflow.example")
        assert issued.returncode == 0, issued.stderr
        token = re.search(r"^access: (\S+)$", issued.stdout, re.M).group(1)

        with gunicorn_server(env, workers=2, threads=2) as server, jobs_runner(env, with_redis):
            # The image's own HEALTHCHECK, run as the container would.
            healthcheck = dockerfile_healthcheck()
            assert healthcheck[0] == "python", healthcheck
            probe = subprocess.run(
                [sys.executable, *healthcheck[1:]], cwd=ROOT, env={**env, "PORT": str(server.port)},
                capture_output=True, text=True, timeout=30,
            )
            assert probe.returncode == 0, shlex.join(healthcheck) + "\n" + probe.stdout + probe.stderr
            status, _, health = request(server.port, "GET", "/health", headers=HTTPS)
            assert (status, health["status"]) == (200, "ok"), health

            # /docs renders: the page and every script and stylesheet it references.
            status, _, page = request(server.port, "GET", "/docs", headers=HTTPS)
            assert status == 200
            assets = assets_of(page)
            assert any(url.endswith(".js") for url in assets) and any(url.endswith(".css") for url in assets)
            for url in assets:
                assert request(server.port, "GET", url, headers=HTTPS)[0] == 200, url

            # Plain HTTP to the API is redirected; HTTPS from the front end is served.
            assert request(server.port, "GET", "/api/auth/me", headers={"Host": HOST})[0] == 301

            status, _, conversation = api(server.port, "POST", "/api/conversations", token,
                                          {"title": "Q4 launch", "agent_type": "strategy"})
            assert status == 201, conversation
            words = f"Lighthouse brand refresh {uuid.uuid4().hex[:6]}"
            status, _, message = api(server.port, "POST", f"/api/conversations/{conversation['id']}/messages",
                                     token, {"role": "user", "content": words})
            assert status == 201, message

            status, _, listed = api(server.port, "GET", "/api/conversations", token)
            assert status == 200
            assert [c["id"] for c in listed["results"]] == [conversation["id"]]

            found, deadline = [], time.monotonic() + 120
            while not found and time.monotonic() < deadline:
                status, _, results = api(
                    server.port, "GET", "/api/search/semantic-search/global?query=lighthouse+brand&limit=5", token
                )
                assert status == 200, results
                found = [r for r in results["results"] if r["message_id"] == message["id"]]
                time.sleep(0.5)
            assert found, "the stored message never became searchable"
            assert found[0]["content"] == words
