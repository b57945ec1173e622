"""The audit trail of security-relevant actions. Call `record()` from services and views;
it never raises into the request (an audit write failing must not fail a sign-in), but it
runs inside the caller's transaction so a rolled-back action leaves no entry."""

import logging

from accounts.models import AuditLog

logger = logging.getLogger(__name__)


def client_ip(request) -> str | None:
    if request is None:
        return None
    # Behind Cloud Run / a reverse proxy the client is the first X-Forwarded-For hop.
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded:
        return forwarded.split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None


def record(action: str, *, request=None, actor=None, organization=None, target=None, **details) -> None:
    try:
        AuditLog.objects.create(
            action=action,
            actor_id=getattr(actor, "pk", None),
            actor_email=getattr(actor, "email", "") or "",
            organization_id=getattr(organization, "pk", None),
            target_type=type(target).__name__ if target is not None else "",
            target_id=str(getattr(target, "pk", "")) if target is not None else "",
            ip_address=client_ip(request),
            request_id=getattr(request, "request_id", "") if request is not None else "",
            details=details,
        )
    except Exception:  # pragma: no cover - logged, never breaks the action itself
        logger.exception("Could not write audit entry %s", action)
