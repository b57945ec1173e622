"""Reading the deployment files the way Docker, compose and Cloud Build do, so tests run the
very commands they hold instead of copies that could drift."""

import json
import shlex

import yaml

from tests.production.conftest import ROOT


def dockerfile_final_stage() -> list[str]:
    """The runtime stage's instructions, continuation lines joined, comments dropped."""
    joined, current = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        joined.append(current + stripped)
        current = ""
    last_from = max(i for i, line in enumerate(joined) if line.upper().startswith("FROM "))
    return joined[last_from:]


def dockerfile_env() -> dict[str, str]:
    """The runtime stage's ENV, except PATH (the image's venv)."""
    env = {}
    for line in dockerfile_final_stage():
        if line.upper().startswith("ENV "):
            for item in shlex.split(line[4:]):
                name, _, value = item.partition("=")
                env[name] = value
    env.pop("PATH", None)
    return env


def dockerfile_run(containing: str) -> tuple[dict[str, str], list[str]]:
    """The runtime stage's RUN instruction containing `containing`: (its leading VAR=value
    assignments, the command)."""
    (line,) = [line for line in dockerfile_final_stage() if line.upper().startswith("RUN ") and containing in line]
    words = shlex.split(line[4:])
    env = {}
    while words and "=" in words[0] and not words[0].startswith("-"):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


def dockerfile_healthcheck() -> list[str]:
    (line,) = [line for line in dockerfile_final_stage() if line.upper().startswith("HEALTHCHECK ")]
    return json.loads(line.split(" CMD ", 1)[1])


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def cloudbuild_steps() -> dict:
    return {step["id"]: step for step in yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())["steps"]}
