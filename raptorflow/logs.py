"""JSON log lines for production (one object per line, as Cloud Logging reads them).

Each line has time, severity, logger, message and the request id of the request (or
background job) it belongs to. Nothing else of a LogRecord is copied: Django attaches the
request object to django.request records and its body, headers and query string stay out.
Credentials that still reach a message or traceback (bearer tokens, JWTs, provider API
keys) are masked as a last line of defence; the code itself never logs message content,
prompts or tokens. Paths that carry a secret (an invitation's one-time token in
/api/invitations/<token>/accept, a share link's token in /api/shares/<token>) are logged
with it redacted, in gunicorn's access lines (GunicornLogger, both formats) as in Django's
own ("Not Found: <path>")."""

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from raptorflow.request_context import current_request_id

# Path segments that are secrets themselves: /api/invitations/<token>/accept and a share
# link's /api/shares/<token>.
_SECRET_PATH = re.compile(r"(/api/(?:invitations|shares)/)[^/\s?#\"']+")

_SECRET_PATTERNS = [
    (_SECRET_PATH, r"\1[redacted]"),
    (re.compile(r"(?i)(bearer\s+)[^\s'\",]+"), r"\1[redacted]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[redacted-jwt]"),
    (re.compile(r"\b(sk-(?:proj-|or-v1-)?)[A-Za-z0-9_-]{12,}"), r"\1[redacted]"),
    (re.compile(r"\b(rzp_(?:live|test)_)[A-Za-z0-9]+"), r"\1[redacted]"),
    (re.compile(r"(?i)((?:password|secret|api_key|apikey|token)[\"']?\s*[:=]\s*[\"']?)[^\s'\",&]+"), r"\1[redacted]"),
]

# Extra attributes some loggers set on purpose and that carry no content.
_SAFE_EXTRAS = ("status_code", "method", "duration_ms", "task", "task_id", "provider", "outcome")


def scrub(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "severity": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
        }
        for name in _SAFE_EXTRAS:
            value = getattr(record, name, None)
            if isinstance(value, (str, int, float)):
                payload[name] = value
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            payload.update(_access_fields(record.args))
        if record.exc_info:
            payload["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False)


def _access_fields(atoms: Mapping) -> dict:
    """gunicorn's access log line as fields (the path without its query string, which may
    hold search queries or OAuth codes), joined to the app's lines by the request id."""
    fields = {"method": atoms["m"], "path": atoms["U"], "duration_ms": atoms["M"]}
    if str(atoms["s"]).isdigit():
        fields["status_code"] = int(atoms["s"])
    request_id = atoms["{x-request-id}o"]
    if request_id and request_id != "-":
        fields["request_id"] = request_id
    return fields


def redact_path(path: str) -> str:
    """`path` (or a request line) with the secrets some paths carry replaced by [redacted]."""
    return _SECRET_PATH.sub(r"\1[redacted]", path)


try:
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # pragma: no cover - gunicorn is only needed to serve
    _GunicornLogger = object


class GunicornLogger(_GunicornLogger):
    """gunicorn's logger (gunicorn.conf.py's logger_class) with the secrets of paths
    redacted from the access log's path and request line, whatever the format."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("U", "r"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_path(atoms[key])
        return atoms


class PlainFormatter(logging.Formatter):
    """The development format, with the same masking as the JSON one."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))
