"""Deleting one's account: organizations nobody else belongs to go with it, the others are
left, and the last owner of a shared organization must hand over first."""

from django.db import transaction
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import Membership, Organization, Role, User
from accounts.services.organizations import unscoped_organization_remove
from raptorflow import audit, hooks
from raptorflow.errors import Conflict


def _account_deletion_plan(user: User) -> tuple[list[Organization], list[Organization]]:
    """(organizations that go with the user — those where nobody else is a member —,
    organizations that would be left without an owner)."""
    solo, ownerless = [], []
    for membership in Membership.objects.filter(user=user).select_related("organization"):
        others = Membership.objects.filter(organization_id=membership.organization_id).exclude(user=user)
        if not others.exists():
            solo.append(membership.organization)
        elif membership.role == Role.OWNER and not others.filter(role=Role.OWNER).exists():
            ownerless.append(membership.organization)
    return solo, ownerless


def account_deletion_blockers(user: User) -> list[Organization]:
    """The organizations that would be left without an owner if `user` were deleted."""
    return _account_deletion_plan(user)[1]


def _refuse_if_ownerless(ownerless: list[Organization]) -> None:
    if ownerless:
        names = ", ".join(sorted(o.name for o in ownerless))
        raise Conflict(
            f"You are the last owner of {names}; make another member owner before deleting your account.",
            code="last_owner",
            organizations=[{"id": str(o.pk), "name": o.name} for o in ownerless],
        )


def account_delete(*, user: User) -> None:
    """Deletes the user's account: organizations where nobody else is a member (their
    personal one, usually) are deleted whole, the user leaves the others, and their own
    conversations everywhere go with them (foreign keys cascade). Refused (409) while they
    are the last owner of an organization that has other members. Their refresh tokens are
    blacklisted; their access tokens die with their memberships. The audit trail stays."""
    solo, ownerless = _account_deletion_plan(user)
    _refuse_if_ownerless(ownerless)
    # Subscriptions are cancelled before anything is deleted, outside the transaction.
    for organization in solo:
        hooks.organization_deleting(organization)
    cancelled = {organization.pk for organization in solo}
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        # Memberships may have changed since the plan: decide again under the lock.
        solo, ownerless = _account_deletion_plan(user)
        _refuse_if_ownerless(ownerless)
        for organization in solo:
            if organization.pk not in cancelled:
                hooks.organization_deleting(organization)
        deleted = [str(organization.pk) for organization in solo]
        for organization in solo:
            unscoped_organization_remove(organization, actor=user, reason="account_deletion")
        left = list(Membership.objects.filter(user=user).values_list("organization_id", flat=True))
        audit.record(
            "account.delete",
            actor=user,
            target=user,
            deleted_organizations=deleted,
            left_organizations=[str(pk) for pk in left],
        )
        for outstanding in OutstandingToken.objects.filter(user=user):
            BlacklistedToken.objects.get_or_create(token=outstanding)
        # What the user kept private in the organizations they leave goes with them.
        hooks.account_deleting(user)
        user.delete()
