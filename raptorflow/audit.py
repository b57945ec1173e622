"""The audit trail of security-relevant actions, and the context it is written in.

    audit.record("membership.remove", organization=org, target=user, role="admin")

`record()` never raises into the action it records (an audit write failing must not fail a
sign-in), but it runs inside the caller's transaction, so a rolled-back action leaves no
entry.

Who acted, from which address and in which request is not passed around: services know
nothing of HTTP. A context variable carries it instead — RequestIdMiddleware binds the
client's IP and the request id for every request, the API's base view adds the
authenticated caller, and the background job runner carries the context of the request
that scheduled a job into the job. A service may still name the actor explicitly (the
operator in the admin, the user who just signed in).
"""

import contextlib
import ipaddress
import logging
from contextvars import ContextVar
from dataclasses import dataclass, replace

from raptorflow.models import AuditLog

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditContext:
    actor: object | None = None
    ip: str | None = None
    request_id: str = ""


_EMPTY = AuditContext()
_current: ContextVar[AuditContext] = ContextVar("raptorflow_audit_context", default=_EMPTY)
_FROM_CONTEXT = object()


def current() -> AuditContext:
    return _current.get()


@contextlib.contextmanager
def audit_context(**changes):
    """Runs the block with the current context changed by `changes` (actor, ip,
    request_id); the previous context comes back afterwards."""
    token = _current.set(replace(_current.get(), **changes))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


@contextlib.contextmanager
def restored(context: AuditContext):
    """Runs the block in a context captured earlier (a job runs in its request's)."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def bind(context: AuditContext) -> None:
    """Sets the context where a block cannot be wrapped (Celery's task signals); `bind(
    AuditContext())` clears it again."""
    _current.set(context)


def set_actor(actor) -> None:
    """Names the authenticated caller for the rest of this request (the base view calls it
    after authentication; the middleware's binding resets it when the request ends)."""
    _current.set(replace(_current.get(), actor=actor))


def valid_ip(value) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def record(action: str, *, actor=_FROM_CONTEXT, organization=None, target=None, **details) -> None:
    context = _current.get()
    if actor is _FROM_CONTEXT:
        actor = context.actor
    try:
        AuditLog.objects.create(
            action=action,
            actor_id=getattr(actor, "pk", None),
            actor_email=getattr(actor, "email", "") or "",
            organization_id=getattr(organization, "pk", organization),
            target_type=type(target).__name__ if target is not None else "",
            target_id=str(getattr(target, "pk", "")) if target is not None else "",
            ip_address=context.ip,
            request_id=context.request_id if context.request_id not in ("", "-") else "",
            details=details,
        )
    except Exception:  # pragma: no cover - logged, never breaks the action itself
        logger.exception("Could not write audit entry %s", action)
