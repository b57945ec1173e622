"""The role rules of an organization, in one place: who may manage it, and who may touch
the owner role. Every service that acts on an organization calls these with the caller's
Membership (`actor`, re-read for this request by accounts.authentication) — the accounts
services, billing's subscribe and cancel, rag's provider keys — so the API, the admin and
management commands enforce the same rules and views check no role themselves. Reads that
only managers may do are refused by accounts.permissions.ManagersOnlyToRead, declared on
their views.

The last-owner rule needs the owners' rows locked and is in members.py.
"""

from accounts.models import MANAGER_ROLES, Membership, Role
from raptorflow.errors import PermissionDenied

ONLY_OWNERS = "Only an owner can grant, change or remove the owner role."


MANAGERS_ONLY = "Your role in this organization does not allow this action."


def is_manager(role: str) -> bool:
    return role in MANAGER_ROLES


def require_manager(actor: Membership) -> None:
    if not is_manager(actor.role):
        raise PermissionDenied(MANAGERS_ONLY)


def require_owner(actor: Membership, message: str = ONLY_OWNERS) -> None:
    if actor.role != Role.OWNER:
        raise PermissionDenied(message)
