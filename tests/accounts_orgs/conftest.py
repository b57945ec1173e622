"""Fixtures for organizations, members, invitations and domain claims: on top of the
suite's owner (of `org`), teammate (a member of `org`) and outsider (another organization),
an admin of `org`; plus helpers that write conversation data through the ORM."""

import pytest
from django.apps import apps
from django.db import models
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Membership, Organization, Role, User
from accounts.services import user_create_with_personal_organization
from conversations.models import Conversation, Message
from tests.accounts.conftest import fake_google, google_settings  # noqa: F401  (fixtures)
from tests.conftest import make_client


def join(user: User, organization: Organization, role: str = Role.MEMBER) -> Membership:
    return Membership.objects.create(organization=organization, user=user, role=role)


def new_user(email: str, name: str = "") -> User:
    return user_create_with_personal_organization(email=email, name=name)


@pytest.fixture
def admin(org):
    """An admin of the owner's organization."""
    user = new_user("ada@acme.test", "Ada Admin")
    join(user, org, Role.ADMIN)
    user.default_organization = org
    user.save(update_fields=["default_organization"])
    return user


@pytest.fixture
def admin_client(admin, org):
    return make_client(admin, org)


@pytest.fixture
def operator(db):
    """A Django admin operator (superuser)."""
    return User.objects.create_superuser(email="ops@raptorflow.test", password="operator-password-1")


@pytest.fixture
def site(operator):
    """The admin site, signed in as the operator."""
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def client_for(org):
    """An API client for `user` inside `organization` (the owner's by default)."""

    def build(user, organization=None):
        return make_client(user, organization or org)

    return build


def make_conversation(organization, owner, *, title="Launch plan", messages=2) -> Conversation:
    now = timezone.now()
    conversation = Conversation.objects.create(
        organization=organization,
        owner=owner,
        title=title,
        agent_type="strategy",
        activity_at=now,
        message_count=messages,
        last_message_at=now if messages else None,
    )
    for sequence in range(1, messages + 1):
        Message.objects.create(
            conversation=conversation,
            organization=organization,
            owner=owner,
            role="user" if sequence % 2 else "assistant",
            content=f"{title} message {sequence}",
            sequence=sequence,
        )
    return conversation


def rows_pointing_at(target: type[models.Model], pk) -> dict[str, int]:
    """Every row of every model whose foreign key points at `target` row `pk`, by model and field:
    what a deletion must have removed (cascade) or detached (SET_NULL) — new models of
    other apps are covered without listing them."""
    found = {}
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, models.ForeignKey) and field.related_model is target:
                count = model._default_manager.filter(**{field.name: pk}).count()
                if count:
                    found[f"{model._meta.label}.{field.name}"] = count
    return found


def personal_org(user: User) -> Organization:
    """The personal organization created with `user` (the only one they own in fixtures)."""
    return Organization.objects.get(is_personal=True, memberships__user=user, memberships__role=Role.OWNER)


def bearer(access: str) -> APIClient:
    """A client presenting exactly this access token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client
