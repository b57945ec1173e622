"""DRF permissions for reads only managers may do (listing invitations, domain claims,
provider keys). Writes are not checked here: their services hold the rule
(accounts.services.roles), so every action has its rule in exactly one place.

They live in accounts rather than in core: the roles are accounts' own, and core imports
no app.
"""

from rest_framework.permissions import BasePermission

from accounts.services.roles import MANAGERS_ONLY, is_manager

READ_METHODS = ("GET", "HEAD")


class ManagersOnlyToRead(BasePermission):
    """GET (and HEAD) of the view are for the owners and admins of the caller's organization:
    403 for a member, before the handler runs. Other methods pass to their service, which
    checks the role itself. Declare it after IsAuthenticated: it reads the role of the
    Caller that accounts.authentication set as `request.auth`."""

    message = MANAGERS_ONLY

    def has_permission(self, request, view) -> bool:
        if request.method not in READ_METHODS:
            return True
        return request.auth is not None and is_manager(request.auth.role)
