"""The deployment files say what the README promises: a non-root image, migrations as a
deploy step before the new revision serves, the seed's Cloud Run flags, and gunicorn's
connection budget."""

import runpy

import yaml

from tests.production.conftest import ROOT


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
