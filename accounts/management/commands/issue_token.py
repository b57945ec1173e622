"""Prints an access and a refresh token for a user, creating the user (with a personal
organization) if needed: for local development, scripts and operators, without Google."""

from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.models import Membership, Organization
from accounts.tokens import mint_tokens


class Command(BaseCommand):
    help = "Create the user if needed and print an access and a refresh token."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--org", help="Organization id to issue the token for (default: the user's landing one).")

    def handle(self, *args, email, org=None, **options):
        if "@" not in email:
            raise CommandError(f"{email!r} is not an email address")
        user, created = services.user_get_or_create(email=email)
        if not user.is_active:
            raise CommandError(f"{user.email} is deactivated")
        if org:
            membership = (
                Membership.objects.filter(user=user, organization_id=org).select_related("organization").first()
            )
            if membership is None:
                raise CommandError(f"{user.email} is not a member of organization {org}")
            organization = membership.organization
        else:
            organization: Organization = services.landing_organization(user)
        tokens = mint_tokens(user, organization)
        if created:
            self.stderr.write(f"created user {user.email} with organization {organization.name!r}")
        self.stdout.write(f"user: {user.id}")
        self.stdout.write(f"organization: {organization.id}")
        self.stdout.write(f"access: {tokens['access']}")
        self.stdout.write(f"refresh: {tokens['refresh']}")
