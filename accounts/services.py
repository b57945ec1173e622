"""Writes for users, organizations and memberships."""

import hashlib
import secrets
from datetime import timedelta

from allauth.socialaccount.models import SocialAccount
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import (
    MANAGER_ROLES,
    DomainClaim,
    Invitation,
    Membership,
    Organization,
    Role,
    User,
    WorkspaceExclusion,
)
from raptorflow import audit, hooks
from raptorflow.errors import Conflict, InvalidInput, NotFound, PermissionDenied, UpstreamUnavailable

# Consumer mailboxes never match a claimed Workspace domain.
CONSUMER_EMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


@transaction.atomic
def organization_create(*, name: str, owner: User, is_personal: bool = False) -> Organization:
    organization = Organization.objects.create(name=name, is_personal=is_personal)
    Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    return organization


@transaction.atomic
def user_create_with_personal_organization(*, email: str, name: str = "", avatar_url: str = "") -> User:
    """A new user with a personal organization they own (the first-login path)."""
    user = User.objects.create_user(email=email, name=name, avatar_url=avatar_url)
    label = name or email.split("@")[0]
    organization = organization_create(name=f"{label}'s workspace", owner=user, is_personal=True)
    user.default_organization = organization
    user.save(update_fields=["default_organization"])
    return user


def user_get_or_create(*, email: str) -> tuple[User, bool]:
    user = User.objects.filter(email__iexact=email).first()
    if user is not None:
        return user, False
    return user_create_with_personal_organization(email=email.lower()), True


def workspace_domain_join(
    *, user: User, email: str, email_verified: bool, hosted_domain: str | None
) -> Membership | None:
    """Joins the organization that holds an approved claim on the user's Google Workspace
    domain. Needs a verified email whose domain equals Google's `hd` claim; consumer
    Gmail addresses never match."""
    if not email_verified or not hosted_domain:
        return None
    domain = hosted_domain.lower()
    if domain in CONSUMER_EMAIL_DOMAINS or email.lower().rsplit("@", 1)[-1] != domain:
        return None
    claim = DomainClaim.objects.filter(domain__iexact=domain, approved=True).select_related("organization").first()
    if claim is None:
        return None
    # A removal sticks: the domain does not add back someone removed or who left.
    if WorkspaceExclusion.objects.filter(organization=claim.organization, user=user).exists():
        return None
    membership, created = Membership.objects.get_or_create(
        organization=claim.organization, user=user, defaults={"role": Role.MEMBER}
    )
    if created:
        audit.record(
            "organization.workspace_join", actor=user, organization=claim.organization, target=membership, domain=domain
        )
    return membership


def landing_organization(user: User) -> Organization:
    """The organization a sign-in lands in: the default one while the user still belongs
    to it, else the oldest membership."""
    memberships = Membership.objects.filter(user=user).select_related("organization").order_by("created_at")
    if user.default_organization_id:
        for membership in memberships:
            if membership.organization_id == user.default_organization_id:
                return membership.organization
    first = memberships.first()
    if first is None:
        # A user who lost every membership gets a fresh personal organization.
        organization = organization_create(name=f"{user.email.split('@')[0]}'s workspace", owner=user, is_personal=True)
        user.default_organization = organization
        user.save(update_fields=["default_organization"])
        return organization
    return first.organization


# --- Organizations: members, roles, invitations, domain claims, deletion ---------------
#
# `actor` is the caller's Membership in the organization acted on (accounts.authentication
# re-read it for this request). The role rules live here, not in views, so every entry
# point (API, admin, commands) enforces the same ones.

_ONLY_OWNERS = "Only an owner can grant, change or remove the owner role."
_MANAGERS_ONLY = "Your role in this organization does not allow this action."


def _require_manager(actor: Membership) -> None:
    if actor.role not in MANAGER_ROLES:
        raise PermissionDenied(_MANAGERS_ONLY)


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


def _repoint_default_organization(user: User, *, away_from_id) -> None:
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
    _require_manager(actor)
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
    _unscoped_organization_delete(organization, actor=actor.user, reason="owner_request")


def unscoped_organization_delete(*, organization: Organization, operator: User) -> None:
    """An operator's deletion (Django admin): the same as an owner's, without a role."""
    hooks.organization_deleting(organization)
    _unscoped_organization_delete(organization, actor=operator, reason="operator")


@transaction.atomic
def _unscoped_organization_delete(organization: Organization, *, actor: User, reason: str) -> None:
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
        _repoint_default_organization(user, away_from_id=organization_id)


@transaction.atomic
def membership_change_role(*, actor: Membership, target: Membership, role: str) -> Membership:
    actor, target, owner_count = _lock_for_owner_rules(actor, target)
    _require_manager(actor)
    if Role.OWNER in (role, target.role) and actor.role != Role.OWNER:
        raise PermissionDenied(_ONLY_OWNERS)
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
        _require_manager(actor)
    if not leaving and target.role == Role.OWNER and actor.role != Role.OWNER:
        raise PermissionDenied(_ONLY_OWNERS)
    if target.role == Role.OWNER and owner_count <= 1:
        raise _last_owner("leave" if leaving else "be removed")
    user, organization, role = target.user, target.organization, target.role
    target.delete()
    WorkspaceExclusion.objects.get_or_create(organization=organization, user=user)
    _repoint_default_organization(user, away_from_id=organization.pk)
    audit.record(
        "membership.leave" if leaving else "membership.remove",
        actor=actor.user,
        organization=organization,
        target=user,
        role=role,
    )


def invitation_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_create(*, actor: Membership, email: str, role: str) -> Invitation:
    """Creates a single-use invitation and emails its link. Only the token's sha256 is
    stored; the token itself exists only in the email. If the email cannot be sent, the
    invitation is not kept."""
    _require_manager(actor)
    if role == Role.OWNER and actor.role != Role.OWNER:
        raise PermissionDenied(_ONLY_OWNERS)
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
    _require_manager(actor)
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


def user_email_verified(user: User) -> bool:
    """Whether the user's email is known to be theirs: a linked Google account verified
    it. Accounts without a Google account were made by an operator (manage.py
    issue_token) and are trusted."""
    accounts = list(SocialAccount.objects.filter(user=user, provider="google"))
    if not accounts:
        return True
    return any(
        str(account.extra_data.get("email", "")).lower() == user.email.lower()
        and str(account.extra_data.get("email_verified", account.extra_data.get("verified_email", ""))).lower()
        == "true"
        for account in accounts
    )


@transaction.atomic
def invitation_accept(*, user: User, token: str) -> tuple[Membership, bool]:
    """Joins the invitation's organization. Answers (membership, created); accepting again
    an invitation this user already accepted, while still a member, is an idempotent
    repeat. An unknown or revoked token and an invitation for another email are the same
    404."""
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


def organization_switch(*, user: User, organization_id) -> Membership:
    """The caller's membership in `organization_id`, which becomes their default; 404 when
    they do not belong to it."""
    membership = (
        Membership.objects.select_related("organization").filter(user=user, organization_id=organization_id).first()
    )
    if membership is None:
        raise NotFound("No such organization.")
    if user.default_organization_id != membership.organization_id:
        user.default_organization_id = membership.organization_id
        user.save(update_fields=["default_organization"])
    return membership


def domain_claim_create(*, actor: Membership, domain: str) -> DomainClaim:
    _require_manager(actor)
    domain = domain.strip().lower().rstrip(".")
    if domain in CONSUMER_EMAIL_DOMAINS:
        raise InvalidInput({"domain": ["Consumer email domains cannot be claimed."]})
    try:
        with transaction.atomic():
            claim = DomainClaim.objects.create(organization=actor.organization, domain=domain)
            audit.record(
                "domain_claim.create",
                actor=actor.user,
                organization=actor.organization,
                target=claim,
                domain=domain,
            )
    except IntegrityError:
        raise Conflict("This domain is already claimed by an organization.", code="domain_claimed") from None
    return claim


@transaction.atomic
def domain_claim_delete(*, actor: Membership, claim: DomainClaim) -> None:
    _require_manager(actor)
    audit.record(
        "domain_claim.delete",
        actor=actor.user,
        organization=claim.organization,
        target=claim,
        domain=claim.domain,
        approved=claim.approved,
    )
    claim.delete()


@transaction.atomic
def domain_claim_approve(*, claim: DomainClaim, operator: User) -> DomainClaim:
    """An operator's approval (Django admin): from now on Google sign-ins from this
    Workspace domain join the organization."""
    claim = DomainClaim.objects.select_for_update().select_related("organization").get(pk=claim.pk)
    if claim.approved:
        return claim
    claim.approved, claim.approved_at, claim.approved_by = True, timezone.now(), operator
    claim.save(update_fields=["approved", "approved_at", "approved_by"])
    audit.record(
        "domain_claim.approve",
        actor=operator,
        organization=claim.organization,
        target=claim,
        domain=claim.domain,
    )
    return claim


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
            _unscoped_organization_delete(organization, actor=user, reason="account_deletion")
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
        user.delete()
