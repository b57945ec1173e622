"""Members: changing a role and removing a member (or leaving), under the last-owner rule;
and the operator's versions of these (Django admin), which follow the last-owner rule but
no role rule.

Every role change and removal takes the organization's owner rows' locks first, so they run
one after the other (see _lock_for_owner_rules).
"""

from django.db import IntegrityError, transaction

from accounts.models import Membership, Organization, Role, User, WorkspaceExclusion, next_whole_second
from accounts.services.invitations import invitations_revoke_beyond_authority
from accounts.services.organizations import repoint_default_organization
from accounts.services.roles import require_manager, require_owner
from raptorflow import audit, hooks
from raptorflow.errors import Conflict, InvalidInput, NotFound


def _lock_owners(organization_id) -> int:
    """Locks the organization's owner memberships and answers how many there are."""
    return len(
        Membership.objects.select_for_update()
        .filter(organization_id=organization_id, role=Role.OWNER)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _lock_for_owner_rules(actor: Membership, target: Membership) -> tuple[Membership, Membership, int]:
    """Locks the organization's owner memberships, then the actor's and the target's, and
    answers both re-read with the number of owners. Every role change and removal in an
    organization takes the owner locks first (there is always one owner), so they run one
    after the other: two owners demoting or removing each other at the same time cannot
    leave it without one, and an actor demoted or removed meanwhile acts with what is
    left of their rights."""
    owner_count = _lock_owners(target.organization_id)
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
    return rows[actor.pk], rows[target.pk], owner_count


def _lock_for_operator(membership: Membership) -> tuple[Membership, int]:
    """The operator's version of _lock_for_owner_rules: the owner locks first, then the
    target re-read (the admin's instance already carries the form's values)."""
    owner_count = _lock_owners(membership.organization_id)
    target = (
        Membership.objects.select_for_update().select_related("user", "organization").filter(pk=membership.pk).first()
    )
    if target is None:
        raise NotFound("No such member.")
    return target, owner_count


def _last_owner(action: str) -> Conflict:
    return Conflict(
        f"The last owner of an organization cannot {action}; make someone else owner first.", code="last_owner"
    )


def _set_role(target: Membership, role: str, owner_count: int, *, actor: User, **details) -> Membership:
    if role == target.role:
        return target
    if target.role == Role.OWNER and owner_count <= 1:
        raise _last_owner("be demoted")
    previous = target.role
    target.role = role
    # Tokens issued under the old role never work again (accounts/tokens.py).
    target.tokens_valid_after = next_whole_second()
    target.save(update_fields=["role", "tokens_valid_after"])
    # Their pending invitations carry only the authority they still have.
    invitations_revoke_beyond_authority(organization=target.organization, inviter=target.user, role=role, actor=actor)
    audit.record(
        "membership.role_change",
        actor=actor,
        organization=target.organization,
        target=target.user,
        old_role=previous,
        new_role=role,
        **details,
    )
    return target


def _remove(target: Membership, owner_count: int, *, actor: User, leaving: bool = False, **details) -> None:
    if target.role == Role.OWNER and owner_count <= 1:
        raise _last_owner("leave" if leaving else "be removed")
    user, organization, role = target.user, target.organization, target.role
    # In this transaction: what the member kept to themselves there goes with them.
    hooks.member_leaving(organization, user)
    target.delete()
    WorkspaceExclusion.objects.get_or_create(organization=organization, user=user)
    invitations_revoke_beyond_authority(organization=organization, inviter=user, role=None, actor=actor)
    repoint_default_organization(user, away_from_id=organization.pk)
    audit.record(
        "membership.leave" if leaving else "membership.remove",
        actor=actor,
        organization=organization,
        target=user,
        role=role,
        **details,
    )


@transaction.atomic
def membership_change_role(*, actor: Membership, target: Membership, role: str) -> Membership:
    actor, target, owner_count = _lock_for_owner_rules(actor, target)
    require_manager(actor)
    if Role.OWNER in (role, target.role):
        require_owner(actor)
    return _set_role(target, role, owner_count, actor=actor.user)


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
        if target.role == Role.OWNER:
            require_owner(actor)
    _remove(target, owner_count, actor=actor.user, leaving=leaving)


# --- an operator's (Django admin): the last-owner rule, no role rule ----------------------


def _require_known_role(role: str) -> None:
    if role not in Role.values:
        raise InvalidInput({"role": [f"Not a role: {role!r}."]})


@transaction.atomic
def unscoped_membership_add(*, organization: Organization, user: User, role: str, operator: User) -> Membership:
    """Adds `user` to `organization` with `role`, as accepting an invitation would (a
    Workspace removal no longer applies to them). 409 when they already are a member."""
    _require_known_role(role)
    try:
        with transaction.atomic():
            membership = Membership.objects.create(organization=organization, user=user, role=role)
    except IntegrityError:
        raise Conflict(f"{user} is already a member of {organization}.", code="already_member") from None
    WorkspaceExclusion.objects.filter(organization=organization, user=user).delete()
    audit.record("membership.add", actor=operator, organization=organization, target=user, role=role, reason="operator")
    return membership


@transaction.atomic
def unscoped_membership_change_role(*, membership: Membership, role: str, operator: User) -> Membership:
    """An operator's role change: any role, but never the last owner's demotion."""
    _require_known_role(role)
    target, owner_count = _lock_for_operator(membership)
    return _set_role(target, role, owner_count, actor=operator, reason="operator")


@transaction.atomic
def unscoped_membership_remove(*, membership: Membership, operator: User) -> None:
    """An operator's removal: anyone but the last owner, with the same effects as a
    manager's (the removal sticks against Workspace sign-ins, the default organization
    moves on)."""
    target, owner_count = _lock_for_operator(membership)
    _remove(target, owner_count, actor=operator, reason="operator")
