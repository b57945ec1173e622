"""Reads for organizations, members, invitations and domain claims. Each returns a queryset
built on a queryset the caller already scoped (raptorflow.tenancy), or on the user alone
for what belongs to the person rather than to one organization."""

import uuid
from datetime import UTC, datetime

from django.db.models import Case, Exists, F, QuerySet, Value, When
from django.utils import timezone

from accounts.models import InvitationStatus, Membership, Organization, RevokedAccessToken, TokenFamily, User


def active_membership(
    user_id, organization_id, *, issued_at=None, family_id=None, access_jti=None
) -> Membership | None:
    """The membership a token names, if the user is still active and still a member:
    checked on every request, so deactivation and removal take effect at once. With the
    token's `issued_at` (epoch seconds), also only if neither the membership nor the user
    changed since (their tokens_valid_after); with its `family_id`, only while that
    sign-in is not revoked; with an access token's `access_jti`, only while that token is
    not revoked (a logout). One query, whatever is checked."""
    memberships = active_memberships(
        user_id, organization_id, issued_at=issued_at, family_id=family_id, access_jti=access_jti
    )
    return memberships.first() if memberships is not None else None


def active_memberships(
    user_id, organization_id, *, issued_at=None, family_id=None, access_jti=None
) -> QuerySet[Membership] | None:
    """active_membership's query, unevaluated (at most one row), or None when the claims
    alone rule it out: for authentication, which evaluates it together with the rate
    limit (raptorflow.throttling.first_counting_user_hit)."""
    if not user_id or not organization_id:
        return None
    memberships = Membership.objects.select_related("user", "organization").filter(
        user_id=user_id, organization_id=organization_id, user__is_active=True
    )
    if issued_at is not None:
        try:
            issued = datetime.fromtimestamp(int(issued_at), tz=UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            return None
        memberships = memberships.filter(tokens_valid_after__lte=issued, user__tokens_valid_after__lte=issued)
    if family_id is not None:
        try:
            family_id = uuid.UUID(str(family_id))
        except ValueError:
            return None
        memberships = memberships.filter(~Exists(TokenFamily.objects.filter(pk=family_id, revoked_at__isnull=False)))
    if access_jti is not None:
        memberships = memberships.filter(~Exists(RevokedAccessToken.objects.filter(jti=str(access_jti))))
    return memberships


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
