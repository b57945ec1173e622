"""Typed readers for environment variables.

Settings read the environment only through these helpers, so a malformed value fails at
start-up with a message naming the variable instead of surfacing later as a type error.
"""

import os
import sys

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


# What production mode cannot start without (settings.py and gunicorn.conf.py check them).
PRODUCTION_REQUIRED = ["DJANGO_SECRET_KEY", "JWT_SECRET_KEY", "ENCRYPTION_KEY", "DATABASE_URL", "ALLOWED_HOSTS"]


# A variable that another one can stand in for: ENCRYPTION_KEYS (key rotation) carries the
# encryption key as its first entry.
_STANDS_IN_FOR = {"ENCRYPTION_KEY": "ENCRYPTION_KEYS"}


def missing_in_production(names: list[str]) -> list[str]:
    return [name for name in names if not env_str(name) and not env_str(_STANDS_IN_FOR.get(name, ""))]


def missing_configuration_message(missing: list[str]) -> str:
    return (
        "RaptorFlow cannot start in production mode: set "
        + ", ".join(missing)
        + " in the environment (see .env.example)."
    )


def require_in_production(production: bool, names: list[str]) -> None:
    """Stop start-up in production when a secret is missing, naming every missing one in a
    single line on stderr (a traceback would bury it), and exit with status 1."""
    if not production:
        return
    missing = missing_in_production(names)
    if missing:
        sys.stderr.write(missing_configuration_message(missing) + "\n")
        sys.stderr.flush()
        raise SystemExit(1)
