"""The audit trail of security-relevant actions. Call `record()` from services and views;
it never raises into the request (an audit write failing must not fail a sign-in), but it
runs inside the caller's transaction so a rolled-back action leaves no entry."""

import ipaddress
import logging

from accounts.models import AuditLog

logger = logging.getLogger(__name__)


def client_ip(request) -> str | None:
    if request is None:
        return None
    # The address the outermost trusted proxy saw (NUM_PROXIES; Cloud Run's front end is
    # one), as the rate limits count it: the left-most X-Forwarded-For entries are the
    # client's own claim and could name anyone.
    from raptorflow.throttling import client_ip as trusted_client_ip

    try:
        return str(ipaddress.ip_address(trusted_client_ip(request)))
    except ValueError:
        return None


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
