"""Free allowances cannot be multiplied: each free organization brings its own free quota,
so a person owns at most FREE_ORGANIZATIONS_PER_USER of them (their personal one counts);
paid organizations are not limited. accounts creates organizations, billing decides
through the organization_creating hook point."""

import pytest

from accounts.models import Membership, Organization, Role
from accounts.services import organization_create
from billing.models import SubscriptionStatus
from billing.services import limit_free_organizations
from raptorflow import hooks
from raptorflow.models import AuditLog
from tests.accounts_orgs.conftest import join

pytestmark = pytest.mark.django_db

ORGANIZATIONS = "/api/organizations"


def create(client, name="Growth team"):
    return client.post(ORGANIZATIONS, {"name": name}, format="json")


def owned(user) -> int:
    return Membership.objects.filter(user=user, role=Role.OWNER).count()


def test_billing_fills_in_the_organization_creating_hook_point():
    assert hooks.organization_creating.receivers == (limit_free_organizations,)


def test_the_personal_organization_and_one_more_are_free_then_402(owner, owner_client):
    assert create(owner_client, "Growth team").status_code == 201  # the personal one + this = 2

    response = create(owner_client, "Another team")

    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "free_organization_limit"
    assert error["limit"] == 2
    assert "2" in error["message"]
    assert owned(owner) == 2
    assert not Organization.objects.filter(name="Another team").exists()
    assert AuditLog.objects.filter(action="organization.create").count() == 1  # the refused one is not audited


def test_the_limit_is_a_setting(owner, owner_client, settings):
    settings.FREE_ORGANIZATIONS_PER_USER = 3

    assert [create(owner_client, f"Team {n}").status_code for n in range(3)] == [201, 201, 402]
    assert owned(owner) == 3


def test_organizations_with_a_paid_subscription_do_not_count(owner, owner_client, org, make_subscription):
    assert create(owner_client).status_code == 201
    make_subscription(organization=org, status=SubscriptionStatus.ACTIVE)

    assert create(owner_client, "Third").status_code == 201
    assert create(owner_client, "Fourth").status_code == 402
    assert owned(owner) == 3


def test_an_unpaid_or_halted_subscription_still_counts_as_free(owner_client, org, make_subscription):
    make_subscription(organization=org, status=SubscriptionStatus.HALTED)
    assert create(owner_client).status_code == 201

    assert create(owner_client, "Third").status_code == 402


def test_membership_without_ownership_does_not_count(teammate, teammate_client, org, outsider):
    # The teammate owns their personal organization and is a member of the owner's; being
    # an admin elsewhere is not owning it either.
    join(teammate, Organization.objects.get(memberships__user=outsider), Role.ADMIN)

    assert create(teammate_client).status_code == 201
    assert create(teammate_client, "Third").status_code == 402


def test_organizations_made_outside_the_request_are_not_refused_but_count(owner, owner_client, org):
    # Only the caller's own request is limited: sign-in creates the personal organization
    # through the service directly, and it must never be refused.
    assert create(owner_client).status_code == 201
    other = organization_create(name="Someone else's", owner=owner)

    assert other.pk is not None and owned(owner) == 3
    assert create(owner_client, "Fourth").status_code == 402
