"""Audit entries for rejected credentials, written from the API's exception handler.

Every AuthenticationFailed (an invalid, expired or revoked token, a removed member's
token, a refused Google token) is counted in /metrics, but written to the audit log at most
once per client IP per AUDIT_REJECTED_CREDENTIAL_WINDOW seconds, so a flood of bad tokens
cannot fill the table. The token itself is never recorded."""

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import AuthenticationFailed

from raptorflow import audit, errors, metrics
from raptorflow.throttling import client_ip


def record_rejected_credential(request, action: str, **details) -> bool:
    """Writes `action` to the audit log unless this IP already has one in the current
    window; returns whether it was written."""
    ip = client_ip(request)
    if not cache.add(f"audit:{action}:{ip}", 1, settings.AUDIT_REJECTED_CREDENTIAL_WINDOW):
        return False
    audit.record(action, path=request.path, method=request.method, **details)
    return True


def exception_handler(exc, context):
    """raptorflow.errors.exception_handler, plus the audit trail of failed token use."""
    request = context.get("request")
    if isinstance(exc, AuthenticationFailed) and request is not None:
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "authentication_failed"
        metrics.AUTH_FAILURES.labels(code=code).inc()
        record_rejected_credential(request, "auth.token_rejected", code=code)
    return errors.exception_handler(exc, context)
