"""The role rules of an organization, in one place: who may manage it, and who may touch
the owner role. Every service that acts on an organization calls these with the caller's
Membership (`actor`, re-read for this request by accounts.authentication), so the API, the
admin and management commands enforce the same rules.

The last-owner rule needs the owners' rows locked and is in members.py.
"""

from accounts.models import MANAGER_ROLES, Membership
from raptorflow.errors import PermissionDenied

ONLY_OWNERS = "Only an owner can grant, change or remove the owner role."


MANAGERS_ONLY = "Your role in this organization does not allow this action."


def require_manager(actor: Membership) -> None:
    if actor.role not in MANAGER_ROLES:
        raise PermissionDenied(MANAGERS_ONLY)
