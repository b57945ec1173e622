"""Members: changing a role and removing a member (or leaving), under the last-owner rule.

Every role change and removal takes the organization's owner rows' locks first, so they run
one after the other (see _lock_for_owner_rules).
"""

from django.db import transaction

from accounts.models import Membership, Role, WorkspaceExclusion
from accounts.services.organizations import repoint_default_organization
from accounts.services.roles import ONLY_OWNERS, require_manager
from raptorflow import audit
from raptorflow.errors import Conflict, NotFound, PermissionDenied


def _lock_for_owner_rules(actor: Membership, target: Membership) -> tuple[Membership, Membership, int]:
    """Locks the organization's owner memberships, then the actor's and the target's, and
    answers both re-read with the number of owners. Every role change and removal in an
    organization takes the owner locks first (there is always one owner), so they run one
    after the other: two owners demoting or removing each other at the same time cannot
    leave it without one, and an actor demoted or removed meanwhile acts with what is
    left of their rights."""
    owners = list(
        Membership.objects.select_for_update()
        .filter(organization_id=target.organization_id, role=Role.OWNER)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    rows = {
        row.pk: row
        for row in Membership.objects.select_for_update()
        .select_related("user", "organization")
        .filter(pk__in=[actor.pk, target.pk])
        .order_by("pk")
    }
    if actor.pk not in rows:
        raise NotFound("You are no longer a member of this organization.")
    if target.pk not in rows:
        raise NotFound("No such member.")
    return rows[actor.pk], rows[target.pk], len(owners)


def _last_owner(action: str) -> Conflict:
    return Conflict(
        f"The last owner of an organization cannot {action}; make someone else owner first.", code="last_owner"
    )


@transaction.atomic
def membership_change_role(*, actor: Membership, target: Membership, role: str) -> Membership:
    actor, target, owner_count = _lock_for_owner_rules(actor, target)
    require_manager(actor)
    if Role.OWNER in (role, target.role) and actor.role != Role.OWNER:
        raise PermissionDenied(ONLY_OWNERS)
    if role == target.role:
        return target
    if target.role == Role.OWNER and owner_count <= 1:
        raise _last_owner("be demoted")
    previous = target.role
    target.role = role
    target.save(update_fields=["role"])
    audit.record(
        "membership.role_change",
        actor=actor.user,
        organization=target.organization,
        target=target.user,
        old_role=previous,
        new_role=role,
    )
    return target


@transaction.atomic
def membership_remove(*, actor: Membership, target: Membership) -> None:
    """Removes a member, or lets the caller leave when `target` is their own membership.
    Their tokens for this organization stop working at once: authentication re-reads the
    membership on every request. Their conversations stay in the organization, private
    to them, should they come back."""
    leaving = target.pk == actor.pk
    actor, target, owner_count = _lock_for_owner_rules(actor, target)
    if not leaving:
        require_manager(actor)
    if not leaving and target.role == Role.OWNER and actor.role != Role.OWNER:
        raise PermissionDenied(ONLY_OWNERS)
    if target.role == Role.OWNER and owner_count <= 1:
        raise _last_owner("leave" if leaving else "be removed")
    user, organization, role = target.user, target.organization, target.role
    target.delete()
    WorkspaceExclusion.objects.get_or_create(organization=organization, user=user)
    repoint_default_organization(user, away_from_id=organization.pk)
    audit.record(
        "membership.leave" if leaving else "membership.remove",
        actor=actor.user,
        organization=organization,
        target=user,
        role=role,
    )
