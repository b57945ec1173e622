"""Invitations: single-use, emailed, stored as the sha256 of their token only.

An invitation carries only the authority its sender still has: an owner may invite to any
role, an admin to admin and member, a member to none. Demoting or removing a member revokes
their pending invitations for roles they can no longer grant (members.py calls
invitations_revoke_beyond_authority), and acceptance checks the sender's role again.
"""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.models import Invitation, Membership, Organization, Role, User, WorkspaceExclusion
from accounts.services.roles import ONLY_OWNERS, is_manager, require_manager
from accounts.services.users import user_email_verified
from raptorflow import audit
from raptorflow.errors import Conflict, NotFound, PermissionDenied, UpstreamUnavailable


def invitation_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def may_invite(role: str | None, invited_role: str) -> bool:
    """Whether a member with `role` (None: not a member) may grant `invited_role`."""
    if role == Role.OWNER:
        return True
    return role is not None and is_manager(role) and invited_role != Role.OWNER


def invitations_revoke_beyond_authority(
    *, organization: Organization, inviter: User, role: str | None, actor: User | None
) -> int:
    """Revokes `inviter`'s pending invitations to `organization` for roles that `role`
    (their new role; None once they left or were removed) may not grant, audited one by
    one. Called inside the role change's or removal's transaction. Answers how many."""
    revoked = 0
    now = timezone.now()
    pending = Invitation.objects.for_org(organization).pending().filter(invited_by=inviter).select_for_update()
    for invitation in pending.order_by("pk"):
        if may_invite(role, invitation.role):
            continue
        invitation.revoked_at = now
        invitation.save(update_fields=["revoked_at"])
        audit.record(
            "invitation.revoke",
            actor=actor,
            organization=organization,
            target=invitation,
            email=invitation.email,
            role=invitation.role,
            reason="inviter_removed" if role is None else "inviter_demoted",
        )
        revoked += 1
    return revoked


def invitation_create(*, actor: Membership, email: str, role: str) -> Invitation:
    """Creates a single-use invitation and emails its link. Only the token's sha256 is
    stored; the token itself exists only in the email. If the email cannot be sent, the
    invitation is not kept."""
    require_manager(actor)
    if role == Role.OWNER and actor.role != Role.OWNER:
        raise PermissionDenied(ONLY_OWNERS)
    organization = actor.organization
    email = email.strip().lower()
    with transaction.atomic():
        if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
            raise Conflict("This person is already a member of the organization.", code="already_member")
        if Invitation.objects.for_org(organization).pending().filter(email__iexact=email).exists():
            raise Conflict(
                "This email already has a pending invitation; revoke it to send a new one.", code="invitation_pending"
            )
        token = secrets.token_urlsafe(32)
        invitation = Invitation.objects.create(
            organization=organization,
            email=email,
            role=role,
            token_hash=invitation_token_hash(token),
            invited_by=actor.user,
            expires_at=timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS),
        )
        audit.record(
            "invitation.create",
            actor=actor.user,
            organization=organization,
            target=invitation,
            email=email,
            role=role,
        )
        _send_invitation_email(invitation, token=token, inviter=actor.user)
    return invitation


def _send_invitation_email(invitation: Invitation, *, token: str, inviter: User) -> None:
    link = f"{settings.FRONTEND_URL.rstrip('/')}/invitations/{token}"
    inviter_name = inviter.name or inviter.email
    body = (
        f"{inviter_name} invited you to join {invitation.organization.name} on RaptorFlow as {invitation.role}.\n\n"
        f"Accept the invitation: {link}\n\n"
        f"Sign in with {invitation.email} to accept. The link works once and expires on "
        f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC.\n"
    )
    try:
        send_mail(
            # A header cannot carry a line break, which a name typed by a user may hold.
            subject=" ".join(f"Join {invitation.organization.name} on RaptorFlow".split()),
            message=body,
            from_email=None,
            recipient_list=[invitation.email],
        )
    except Exception as exc:  # SMTP errors come in many types; none may leave a dead invitation.
        raise UpstreamUnavailable(
            "The invitation email could not be sent; try again.", code="email_unavailable"
        ) from exc


@transaction.atomic
def invitation_revoke(*, actor: Membership, invitation: Invitation) -> None:
    require_manager(actor)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is not None:
        raise Conflict("This invitation was already accepted; remove the member instead.", code="invitation_used")
    if invitation.revoked_at is not None:
        return
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit.record(
        "invitation.revoke",
        actor=actor.user,
        organization=invitation.organization,
        target=invitation,
        email=invitation.email,
    )


@transaction.atomic
def invitation_accept(*, user: User, token: str) -> tuple[Membership, bool]:
    """Joins the invitation's organization. Answers (membership, created); accepting again
    an invitation this user already accepted, while still a member, is an idempotent
    repeat. An unknown or revoked token and an invitation for another email are the same
    404; so is an invitation whose sender no longer holds a role that may grant it (it
    should have been revoked with their demotion or removal)."""
    # The sender's membership is locked before the invitation, in the order a role change
    # or removal takes them (membership, then its sender's invitations): a demotion running
    # meanwhile either committed its revocations before this reads them, or waits.
    sender = (
        Invitation.objects.filter(token_hash=invitation_token_hash(token))
        .values("organization_id", "invited_by_id")
        .first()
    ) or {}
    inviter_role = (
        Membership.objects.select_for_update()
        .filter(organization_id=sender.get("organization_id"), user_id=sender.get("invited_by_id"))
        .values_list("role", flat=True)
        .first()
    )
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("organization")
        .filter(token_hash=invitation_token_hash(token))
        .first()
    )
    if invitation is None or invitation.revoked_at is not None or invitation.email.lower() != user.email.lower():
        raise NotFound("No such invitation for this account.")
    if invitation.accepted_at is not None:
        membership = Membership.objects.filter(organization=invitation.organization, user=user).first()
        if invitation.accepted_by_id == user.pk and membership is not None:
            return membership, False
        raise Conflict("This invitation has already been used.", code="invitation_used")
    if invitation.expires_at <= timezone.now():
        raise Conflict("This invitation has expired; ask for a new one.", code="invitation_expired")
    if invitation.invited_by_id != sender.get("invited_by_id") or not may_invite(inviter_role, invitation.role):
        raise NotFound("No such invitation for this account.")
    if not user_email_verified(user):
        raise Conflict(
            "Google has not verified this account's email address, so it cannot accept invitations sent to it.",
            code="email_unverified",
        )
    # Someone already in the organization (e.g. through a Workspace domain) keeps their role.
    membership, created = Membership.objects.get_or_create(
        organization=invitation.organization, user=user, defaults={"role": invitation.role}
    )
    WorkspaceExclusion.objects.filter(organization=invitation.organization, user=user).delete()
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit.record(
        "invitation.accept",
        actor=user,
        organization=invitation.organization,
        target=invitation,
        role=membership.role,
    )
    return membership, created
