"""Users, organizations (tenants), memberships, invitations and Workspace domain claims.
The audit log is the core app's (raptorflow.models)."""

import uuid
from datetime import timedelta

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower, Now
from django.utils import timezone

from raptorflow.tenancy import TenantQuerySet, TenantScope


def next_whole_second():
    """When tokens start being valid again after a change: the next whole second. A JWT's
    `iat` has whole seconds, so tokens issued before now carry a smaller one, and
    accounts.tokens gives those issued from now on an `iat` of at least this."""
    return timezone.now().replace(microsecond=0) + timedelta(seconds=1)


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("A user needs an email address")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Email is the login; Google accounts link to it through allauth."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254, unique=True)
    name = models.CharField(max_length=200, blank=True)
    avatar_url = models.URLField(max_length=500, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    # The organization a fresh sign-in lands in (switching changes it).
    default_organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    date_joined = models.DateTimeField(default=timezone.now)
    # Tokens issued before this never work again: moved on (de)activation.
    # db_default: rows written outside the ORM (bulk loads) are valid from their insertion.
    tokens_valid_after = models.DateTimeField(default=next_whole_second, db_default=Now(), editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self):
        return self.email


class Organization(models.Model):
    """A tenant. Every tenant-owned row carries one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    # A personal organization is created for every new user; it may later gain teammates.
    is_personal = models.BooleanField(default=False)
    settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


MANAGER_ROLES = (Role.OWNER, Role.ADMIN)


class MembershipQuerySet(TenantQuerySet):
    pass


class Membership(models.Model):
    tenant_scope = TenantScope.ORGANIZATION

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)
    # Tokens for this organization issued before this never work again: set when the
    # membership is created (a removed member's old tokens stay dead after re-admission)
    # and moved on every role change.
    # db_default: rows written outside the ORM (bulk loads) are valid from their insertion.
    tokens_valid_after = models.DateTimeField(default=next_whole_second, db_default=Now(), editable=False)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique_per_org"),
            models.CheckConstraint(condition=Q(role__in=[r.value for r in Role]), name="membership_role_valid"),
        ]
        indexes = [models.Index(fields=["user", "organization"])]

    def __str__(self):
        return f"{self.user} in {self.organization} ({self.role})"


class TokenFamily(models.Model):
    """The refresh tokens descended from one sign-in (the `fam` claim of its tokens).
    Rotation is single-use, so a family has one current refresh token; a rotated-out
    one presented again after the grace period revokes the whole family
    (accounts.tokens)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    current_jti = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"sign-in {self.pk} of {self.user_id}"


class RevokedAccessToken(models.Model):
    """An access token's jti refused until the token would have expired anyway (a logout).
    A table rather than the cache so that authentication checks it in the same query as
    the membership, whichever cache is configured (accounts.selectors.active_membership)."""

    jti = models.CharField(max_length=255, primary_key=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self):
        return f"revoked access token {self.jti}"


class InvitationStatus(models.TextChoices):
    """Derived, not stored: accounts.selectors.invitations_with_status annotates it."""

    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class InvitationQuerySet(TenantQuerySet):
    def pending(self):
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())


class Invitation(models.Model):
    """A single-use invitation to join an organization; only its token's hash is stored."""

    tenant_scope = TenantScope.ORGANIZATION

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self):
        return f"{self.email} → {self.organization}"


class DomainClaimQuerySet(TenantQuerySet):
    pass


class DomainClaim(models.Model):
    """A Google Workspace domain an organization claims. It absorbs sign-ins only once an
    operator approved it. Several organizations may claim a domain (a squatter's pending
    claim must not block its real owner), each once; at most one claim of a domain is
    approved, and approving it deletes the others (accounts.services.domain_claim_approve)."""

    tenant_scope = TenantScope.ORGANIZATION

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="domain_claims")
    domain = models.CharField(max_length=253)
    approved = models.BooleanField(default=False)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DomainClaimQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint("organization", Lower("domain"), name="domain_claim_unique_per_org"),
            models.UniqueConstraint(Lower("domain"), condition=Q(approved=True), name="domain_claim_one_approved"),
        ]

    def __str__(self):
        return f"{self.domain} ({'approved' if self.approved else 'pending'})"


class WorkspaceExclusion(models.Model):
    """Someone removed from (or who left) an organization: its approved Workspace domain
    claim no longer adds them back at their next Google sign-in. An invitation they accept
    lifts it."""

    tenant_scope = TenantScope.ORGANIZATION

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="workspace_exclusion_unique")]

    def __str__(self):
        return f"{self.user} kept out of {self.organization}"
