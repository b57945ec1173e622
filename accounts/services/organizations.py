"""Organizations: creation, settings, deletion, and where a user lands when theirs is gone.

Deleting an organization first calls the `organization_deleting` hook point (billing
cancels a live subscription there; a failure blocks the deletion), outside any
transaction, then deletes it with every row that belongs to it.
"""

from django.db import transaction

from accounts.models import Membership, Organization, Role, User
from accounts.services.roles import require_manager
from raptorflow import audit, hooks
from raptorflow.errors import PermissionDenied


@transaction.atomic
def organization_create(*, name: str, owner: User, is_personal: bool = False) -> Organization:
    organization = Organization.objects.create(name=name, is_personal=is_personal)
    Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    return organization


@transaction.atomic
def organization_create_for(*, name: str, owner: User) -> Organization:
    """An organization a user creates for themselves (not their personal one): the
    `organization_creating` hook point may refuse it (billing's free-organization allowance)
    inside the same transaction, so a refused creation writes nothing; audited here so no
    caller can forget it."""
    hooks.organization_creating(owner)
    organization = organization_create(name=name, owner=owner)
    audit.record("organization.create", actor=owner, organization=organization)
    return organization


def repoint_default_organization(user: User, *, away_from_id) -> None:
    """A user whose default organization they no longer belong to lands in their oldest
    remaining one (or, with none left, in a fresh personal one at the next sign-in)."""
    if user.default_organization_id != away_from_id:
        return
    remaining = (
        Membership.objects.filter(user=user).exclude(organization_id=away_from_id).order_by("created_at", "pk").first()
    )
    user.default_organization_id = remaining.organization_id if remaining else None
    user.save(update_fields=["default_organization"])


@transaction.atomic
def organization_update(*, actor: Membership, name: str | None = None, settings: dict | None = None) -> Organization:
    require_manager(actor)
    organization = Organization.objects.select_for_update().get(pk=actor.organization_id)
    changed = []
    if name is not None and name != organization.name:
        organization.name = name
        changed.append("name")
    if settings is not None and settings != organization.settings:
        organization.settings = settings
        changed.append("settings")
    if changed:
        # Only the fields sent: a concurrent update of the other one is not overwritten.
        organization.save(update_fields=[*changed, "updated_at"])
        audit.record("organization.update", actor=actor.user, organization=organization, fields=changed)
    return organization


def organization_delete(*, actor: Membership) -> None:
    """Deletes the organization with every row that belongs to it (conversations, messages,
    embeddings, invitations, domain claims, memberships cascade through their foreign
    keys); the audit trail stays. Its subscription is cancelled first, outside the
    transaction, so a failed cancellation deletes nothing."""
    if actor.role != Role.OWNER:
        raise PermissionDenied("Only an owner can delete the organization.")
    organization = actor.organization
    hooks.organization_deleting(organization)
    unscoped_organization_remove(organization, actor=actor.user, reason="owner_request")


def unscoped_organization_delete(*, organization: Organization, operator: User) -> None:
    """An operator's deletion (Django admin): the same as an owner's, without a role."""
    hooks.organization_deleting(organization)
    unscoped_organization_remove(organization, actor=operator, reason="operator")


@transaction.atomic
def unscoped_organization_remove(organization: Organization, *, actor: User, reason: str) -> None:
    audit.record(
        "organization.delete",
        actor=actor,
        organization=organization,
        target=organization,
        name=organization.name,
        members=Membership.objects.filter(organization=organization).count(),
        reason=reason,
    )
    organization_id = organization.pk
    stranded = list(User.objects.filter(default_organization_id=organization_id))
    organization.delete()
    for user in stranded:
        repoint_default_organization(user, away_from_id=organization_id)
