"""Users: the first sign-in (a user with a personal organization), the organization a
sign-in lands in, switching organization, and whether an email is known to be theirs."""

from allauth.socialaccount.models import SocialAccount
from django.db import transaction

from accounts.models import Membership, Organization, User
from accounts.services.organizations import organization_create
from raptorflow.errors import NotFound


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
