"""Writes for users, organizations and memberships."""

from django.db import transaction

from accounts.models import DomainClaim, Membership, Organization, Role, User

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
    membership, _ = Membership.objects.get_or_create(
        organization=claim.organization, user=user, defaults={"role": Role.MEMBER}
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
