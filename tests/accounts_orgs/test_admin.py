import json

import pytest
import responses
from allauth.socialaccount.models import SocialAccount

from accounts.models import DomainClaim, Invitation, Membership, Organization, Role, User
from accounts.services import workspace_domain_join
from billing.models import SubscriptionStatus
from raptorflow.models import AuditLog
from tests.accounts_orgs.conftest import new_user
from tests.billing_fixtures import cancel_url, subscription_entity

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "model",
    ["accounts/user", "accounts/organization", "accounts/membership", "accounts/domainclaim", "raptorflow/auditlog"],
)
def test_changelists_open(site, owner, teammate, model):
    AuditLog.objects.create(action="test.entry")

    response = site.get(f"/admin/{model}/")

    assert response.status_code == 200


def test_the_organization_page_shows_members_invitations_and_domain_claims(site, owner, teammate, org):
    Invitation.objects.create(
        organization=org, email="ivy@acme.test", token_hash="f" * 64, expires_at="2099-01-01T00:00:00Z"
    )
    DomainClaim.objects.create(organization=org, domain="acme.test")

    page = site.get(f"/admin/accounts/organization/{org.id}/change/").content.decode()

    for text in ("olivia@acme.test", "tom@acme.test", "ivy@acme.test", "acme.test"):
        assert text in page


def test_the_user_page_shows_memberships_and_linked_google_accounts(site, teammate, org):
    SocialAccount.objects.create(user=teammate, provider="google", uid="google-sub-4242")

    page = site.get(f"/admin/accounts/user/{teammate.id}/change/").content.decode()

    assert "google-sub-4242" in page
    assert org.name.replace("'", "&#x27;") in page


def test_an_operator_approves_a_domain_claim_and_sign_ins_then_join(site, operator, org):
    claim = DomainClaim.objects.create(organization=org, domain="acme.test")
    zoe = new_user("zoe@acme.test")
    assert workspace_domain_join(user=zoe, email=zoe.email, email_verified=True, hosted_domain="acme.test") is None

    response = site.post("/admin/accounts/domainclaim/", {"action": "approve", "_selected_action": [str(claim.id)]})

    assert response.status_code == 302
    claim.refresh_from_db()
    assert (claim.approved, claim.approved_by) == (True, operator)
    assert claim.approved_at is not None
    assert AuditLog.objects.filter(action="domain_claim.approve", actor_id=operator.id, organization_id=org.id).exists()
    assert workspace_domain_join(user=zoe, email=zoe.email, email_verified=True, hosted_domain="acme.test")
    assert Membership.objects.filter(user=zoe, organization=org, role=Role.MEMBER).exists()


def test_approval_cannot_be_typed_into_the_claim_form(site, org):
    claim = DomainClaim.objects.create(organization=org, domain="acme.test")

    response = site.post(
        f"/admin/accounts/domainclaim/{claim.id}/change/",
        {"organization": str(org.id), "domain": "acme.test", "approved": "on"},
    )

    assert response.status_code == 302  # the form was saved, without the read-only field
    claim.refresh_from_db()
    assert claim.approved is False


def test_the_audit_log_is_read_only(site):
    entry = AuditLog.objects.create(action="test.entry", actor_email="x@acme.test")

    assert site.get("/admin/raptorflow/auditlog/add/").status_code == 403
    assert site.get(f"/admin/raptorflow/auditlog/{entry.id}/change/").status_code == 200
    assert site.post(f"/admin/raptorflow/auditlog/{entry.id}/change/", {"action": "edited"}).status_code == 403
    assert site.post(f"/admin/raptorflow/auditlog/{entry.id}/delete/", {"post": "yes"}).status_code == 403
    entry.refresh_from_db()
    assert entry.action == "test.entry"


def test_deleting_an_organization_in_the_admin_cancels_its_subscription_first(
    site, operator, org, make_subscription, razorpay_keys, rzp
):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)
    org_id = org.id
    existed_at_cancellation = []

    def cancel(request):
        existed_at_cancellation.append(Organization.objects.filter(id=org_id).exists())
        return 200, {}, json.dumps(subscription_entity(subscription.razorpay_subscription_id, status="cancelled"))

    rzp.add_callback(responses.POST, cancel_url(subscription.razorpay_subscription_id), callback=cancel)

    response = site.post(f"/admin/accounts/organization/{org_id}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert existed_at_cancellation == [True]
    assert json.loads(rzp.calls[0].request.body) == {"cancel_at_cycle_end": 0}
    assert not Organization.objects.filter(id=org_id).exists()
    assert AuditLog.objects.get(action="billing.cancel").details["reason"] == "organization_deleted"
    entry = AuditLog.objects.get(action="organization.delete")
    assert (entry.actor_id, entry.details["reason"]) == (operator.id, "operator")


def test_deleting_an_organization_without_subscription_in_the_admin_calls_no_one(site, operator, org, rzp):
    org_id = org.id

    response = site.post(f"/admin/accounts/organization/{org_id}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert len(rzp.calls) == 0
    assert not Organization.objects.filter(id=org_id).exists()


def test_a_refused_cancellation_keeps_the_organization_and_tells_the_operator(
    site, operator, org, make_subscription, razorpay_keys, rzp
):
    import requests

    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)
    rzp.add(responses.POST, cancel_url(subscription.razorpay_subscription_id), body=requests.ConnectionError("down"))

    response = site.post(f"/admin/accounts/organization/{org.id}/delete/", {"post": "yes"}, follow=True)

    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"]]
    assert any("Razorpay" in message for message in shown), shown
    assert not any("deleted successfully" in message for message in shown)
    assert Organization.objects.filter(id=org.id).exists()
    assert not AuditLog.objects.filter(action="organization.delete").exists()


def test_the_admin_does_not_delete_the_last_owner_of_a_shared_organization(site, owner, teammate):
    assert site.get(f"/admin/accounts/user/{owner.id}/delete/").status_code == 403

    response = site.post(
        "/admin/accounts/user/", {"action": "delete_accounts", "_selected_action": [str(owner.id), str(teammate.id)]}
    )

    assert response.status_code == 302
    assert User.objects.filter(id=owner.id).exists()
    assert not User.objects.filter(id=teammate.id).exists()
    assert AuditLog.objects.filter(action="account.delete", actor_email="tom@acme.test").exists()
