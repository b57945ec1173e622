"""The deployment files say what the README promises: a non-root image in production mode
with its static files collected and a health check that works, migrations as the only
deploy step before the new revision serves, the seed's Cloud Run flags with probes on
/health, and gunicorn's connection budget."""

import runpy

import yaml

from tests.production.conftest import ROOT
from tests.production.deploy_files import (
    cloudbuild_steps,
    compose,
    dockerfile_env,
    dockerfile_final_stage,
    dockerfile_healthcheck,
    dockerfile_run,
)


def _final_stage(dockerfile: str) -> list[str]:
    lines = [line.strip() for line in dockerfile.splitlines() if line.strip() and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[last_from:]


def test_the_image_runs_as_a_non_root_user():
    stage = _final_stage((ROOT / "Dockerfile").read_text())
    users = [line.split()[1] for line in stage if line.upper().startswith("USER ")]
    assert users, "the final stage sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0")


def _steps() -> dict:
    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    return {step["id"]: step for step in build["steps"]}, [step["id"] for step in build["steps"]]


def test_cloud_build_migrates_before_it_deploys():
    steps, order = _steps()
    assert order.index("build") < order.index("push") < order.index("migrate") < order.index("deploy")
    migrate = " ".join(steps["migrate"]["args"])
    assert "manage.py,migrate,--noinput" in migrate
    assert "gcloud run jobs execute" in migrate and "--wait" in migrate


def test_cloud_build_deploys_with_the_seeds_flags_and_production_mode():
    steps, _ = _steps()
    deploy = " ".join(steps["deploy"]["args"])
    for flag in ("--memory 2Gi", "--cpu 2", "--allow-unauthenticated", "--timeout 3600", "--max-instances 100"):
        assert flag in deploy
    assert "APP_MODE=prod,ENVIRONMENT=production" in deploy
    secrets = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())["substitutions"]["_SECRETS"]
    # Every secret production refuses to start without comes from Secret Manager.
    for name in ("DJANGO_SECRET_KEY", "JWT_SECRET_KEY", "ENCRYPTION_KEY", "DATABASE_URL", "METRICS_TOKEN"):
        assert f"{name}=" in secrets


def test_gunicorn_defaults_fit_the_documented_connection_budget(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("GUNICORN_WORKERS", "GUNICORN_THREADS", "GUNICORN_BIND", "PORT"):
        monkeypatch.delenv(name, raising=False)
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    # 2 processes x 4 threads: at most 8 connections per instance without a pool,
    # 800 at Cloud Run's 100 instances (README "Scaling").
    assert config["workers"] * config["threads"] == 8
    assert config["worker_class"] == "gthread"
    assert config["bind"] == "0.0.0.0:8080"
    # Shorter than Cloud Run's 10 s between SIGTERM and SIGKILL.
    assert config["graceful_timeout"] < 10
    assert "%(q)s" not in config["access_log_format"]  # no query strings in access logs


def test_the_image_runs_in_production_mode_unless_told_otherwise():
    assert dockerfile_env()["APP_MODE"] == "prod"


def test_the_image_collects_its_static_files_at_build():
    env, command = dockerfile_run("collectstatic")
    assert command == ["python", "manage.py", "collectstatic", "--noinput"]
    # Placeholders, never real secrets, baked into a build layer.
    assert all(value in ("collectstatic-only", "localhost") or value.startswith("postgresql://build@")
               for value in env.values())


def test_the_image_and_compose_health_checks_run_the_probe_script():
    assert dockerfile_healthcheck() == ["python", "scripts/healthcheck.py"]
    assert compose()["services"]["api"]["healthcheck"]["test"] == ["CMD", *dockerfile_healthcheck()]


def test_compose_runs_the_api_and_worker_in_production_mode():
    services = compose()["services"]
    for name in ("api", "worker"):
        assert services[name]["environment"]["APP_MODE"] == "prod"
        assert services[name]["env_file"] == ".env"  # the secrets production mode requires


def test_migrate_is_the_only_deploy_step():
    # The database cache's table comes from a migration (raptorflow 0002): no deploy path
    # runs createcachetable any more.
    for name in ("Dockerfile", "docker-compose.yml", "cloudbuild.yaml", "scripts/serve.sh", "README.md"):
        assert "createcachetable" not in (ROOT / name).read_text(), name
    serve = (ROOT / "scripts/serve.sh").read_text()
    assert serve.index("manage.py migrate") < serve.index("manage.py collectstatic") < serve.index("runserver")
    assert not any("migrate" in line for line in dockerfile_final_stage() if line.upper().startswith("CMD "))


def test_cloud_run_probes_the_health_endpoint():
    deploy = " ".join(cloudbuild_steps()["deploy"]["args"])
    assert '--startup-probe "httpGet.path=/health,' in deploy
    assert '--liveness-probe "httpGet.path=/health,' in deploy
