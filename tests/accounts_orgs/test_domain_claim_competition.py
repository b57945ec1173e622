"""An unapproved domain claim never blocks another organization's: several organizations
may claim a domain (each once), an operator approves one, and the approval deletes the
others (audited as rejected); the database keeps at most one approved claim per domain."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import DomainClaim, Membership
from accounts.services import workspace_domain_join
from raptorflow.models import AuditLog
from tests.accounts_orgs.conftest import new_user

pytestmark = pytest.mark.django_db

DOMAINS = "/api/organizations/current/domains"
CLAIMS_ADMIN = "/admin/accounts/domainclaim/"


def claim(client, domain="acme.test"):
    return client.post(DOMAINS, {"domain": domain}, format="json")


def test_a_squatters_pending_claim_does_not_block_the_real_owner(owner_client, outsider_client, org, outsider):
    assert claim(outsider_client).status_code == 201

    response = claim(owner_client, "ACME.test")

    assert response.status_code == 201
    assert response.json()["approved"] is False
    assert set(DomainClaim.objects.values_list("organization_id", flat=True)) == {
        org.id,
        outsider.default_organization_id,
    }


def test_an_organization_claims_a_domain_once(owner_client, outsider_client):
    assert claim(outsider_client).status_code == 201
    assert claim(owner_client).status_code == 201

    response = claim(owner_client, "Acme.Test")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "domain_claimed"
    assert DomainClaim.objects.count() == 2


def test_approving_one_claim_deletes_the_others_and_audits_it(
    site, operator, owner_client, outsider_client, org, outsider
):
    assert claim(outsider_client).status_code == 201
    real = DomainClaim.objects.get(id=claim(owner_client).json()["id"])
    squatter = DomainClaim.objects.get(organization=outsider.default_organization)

    response = site.post(CLAIMS_ADMIN, {"action": "approve", "_selected_action": [str(real.id)]})

    assert response.status_code == 302
    assert list(DomainClaim.objects.values_list("id", "approved")) == [(real.id, True)]
    rejection = AuditLog.objects.get(action="domain_claim.reject")
    assert (rejection.actor_id, rejection.organization_id, rejection.target_id) == (
        operator.id,
        outsider.default_organization_id,
        str(squatter.id),
    )
    assert rejection.details == rejection.details | {"domain": "acme.test", "approved_for": str(org.id)}
    zoe = new_user("zoe@acme.test")
    membership = workspace_domain_join(user=zoe, email=zoe.email, email_verified=True, hosted_domain="acme.test")
    assert membership.organization_id == org.id
    # The squatter, who lost its claim, gets nothing.
    assert not Membership.objects.filter(user=zoe, organization=outsider.default_organization).exists()


def test_once_approved_other_organizations_cannot_claim_it(site, owner_client, outsider_client, org):
    real = DomainClaim.objects.get(id=claim(owner_client).json()["id"])
    site.post(CLAIMS_ADMIN, {"action": "approve", "_selected_action": [str(real.id)]})

    response = claim(outsider_client)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "domain_claimed"
    assert list(DomainClaim.objects.values_list("organization_id", flat=True)) == [org.id]


def test_approving_two_competing_claims_at_once_keeps_the_first(site, owner_client, outsider_client, org):
    first = DomainClaim.objects.get(id=claim(owner_client).json()["id"])
    second = DomainClaim.objects.get(id=claim(outsider_client).json()["id"])

    response = site.post(
        CLAIMS_ADMIN, {"action": "approve", "_selected_action": [str(first.id), str(second.id)]}, follow=True
    )

    assert response.status_code == 200
    messages = [str(message) for message in response.context["messages"]]
    assert any("no longer exists" in message for message in messages), messages
    approved = DomainClaim.objects.get()
    assert approved.approved
    assert approved.id in (first.id, second.id)


def test_the_database_keeps_one_approved_claim_per_domain(org, outsider):
    DomainClaim.objects.create(organization=org, domain="acme.test", approved=True, approved_at=timezone.now())
    DomainClaim.objects.create(organization=outsider.default_organization, domain="ACME.test")

    with pytest.raises(IntegrityError), transaction.atomic():
        DomainClaim.objects.filter(organization=outsider.default_organization).update(approved=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        DomainClaim.objects.create(organization=org, domain="Acme.test")
