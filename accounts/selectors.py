"""Reads for organizations, members, invitations and domain claims. Each returns a queryset
built on a queryset the caller already scoped (raptorflow.tenancy), or on the user alone
for what belongs to the person rather than to one organization."""

from django.db.models import Case, F, QuerySet, Value, When
from django.utils import timezone

from accounts.models import InvitationStatus, Membership, Organization, User


def active_membership(user_id, organization_id) -> Membership | None:
    """The membership a token names, if the user is still active and still a member:
    checked on every request, so deactivation and removal take effect at once."""
    if not user_id or not organization_id:
        return None
    membership = (
        Membership.objects.select_related("user", "organization")
        .filter(user_id=user_id, organization_id=organization_id)
        .first()
    )
    if membership is None or not membership.user.is_active:
        return None
    return membership


def organizations_of_user(user: User) -> QuerySet[Organization]:
    """The organizations `user` belongs to, each annotated with `role` and `joined_at`."""
    # One filter() call and F() over the same relation: the annotations read the row of
    # the membership that matched, not any membership of the organization.
    return Organization.objects.filter(memberships__user=user).annotate(
        role=F("memberships__role"), joined_at=F("memberships__created_at")
    )


def members(memberships: QuerySet) -> QuerySet:
    return memberships.select_related("user")


def invitations_with_status(invitations: QuerySet) -> QuerySet:
    """Invitations annotated with `status`: accepted and revoked win over expiry."""
    return invitations.select_related("invited_by").annotate(
        status=Case(
            When(accepted_at__isnull=False, then=Value(InvitationStatus.ACCEPTED)),
            When(revoked_at__isnull=False, then=Value(InvitationStatus.REVOKED)),
            When(expires_at__lte=timezone.now(), then=Value(InvitationStatus.EXPIRED)),
            default=Value(InvitationStatus.PENDING),
        )
    )
