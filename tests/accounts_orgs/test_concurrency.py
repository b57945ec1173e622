"""The last-owner rule under concurrency: real transactions on separate connections."""

import pytest

from accounts.models import Membership, Organization, Role
from accounts.services import membership_change_role, membership_remove
from raptorflow.errors import NotFound, PermissionDenied
from tests.accounts_orgs.conftest import join, new_user
from tests.concurrency import run_together


@pytest.fixture
def two_owners(transactional_db):
    first = new_user("first@acme.test")
    organization = Organization.objects.create(name="Acme")
    second = new_user("second@acme.test")
    a = join(first, organization, Role.OWNER)
    b = join(second, organization, Role.OWNER)
    return organization, a, b


@pytest.mark.parametrize("attempt", range(3))
def test_two_owners_removing_each_other_at_once_leave_one_owner(two_owners, attempt):
    organization, a, b = two_owners

    outcomes = run_together(lambda: membership_remove(actor=a, target=b), lambda: membership_remove(actor=b, target=a))

    assert Membership.objects.filter(organization=organization, role=Role.OWNER).count() == 1
    failures = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    # The loser acted after losing their own membership: refused, nothing half-applied.
    assert len(failures) == 1
    assert isinstance(failures[0], NotFound)


@pytest.mark.parametrize("attempt", range(3))
def test_two_owners_demoting_each_other_at_once_leave_one_owner(two_owners, attempt):
    organization, a, b = two_owners

    outcomes = run_together(
        lambda: membership_change_role(actor=a, target=b, role=Role.MEMBER),
        lambda: membership_change_role(actor=b, target=a, role=Role.MEMBER),
    )

    assert Membership.objects.filter(organization=organization, role=Role.OWNER).count() == 1
    failures = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    # The loser is no longer an owner by the time their change runs.
    assert len(failures) == 1
    assert isinstance(failures[0], PermissionDenied)
