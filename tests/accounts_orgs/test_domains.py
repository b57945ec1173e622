import pytest
from django.utils import timezone

from accounts.models import DomainClaim, Membership, Role, User
from accounts.services import workspace_domain_join
from raptorflow.models import AuditLog
from tests.accounts.conftest import start_login
from tests.accounts_orgs.conftest import join, new_user

pytestmark = pytest.mark.django_db

DOMAINS = "/api/organizations/current/domains"


def approved_claim(organization, domain="acme.test") -> DomainClaim:
    return DomainClaim.objects.create(
        organization=organization, domain=domain, approved=True, approved_at=timezone.now()
    )


# --- claiming through the API -------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner_client", "admin_client"])
def test_owner_or_admin_claims_a_domain_which_waits_for_approval(request, org, who):
    client = request.getfixturevalue(who)

    response = client.post(DOMAINS, {"domain": " Acme.Test. "}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["domain"], body["approved"], body["approved_at"]) == ("acme.test", False, None)
    claim = DomainClaim.objects.get(id=body["id"])
    assert (claim.organization, claim.approved) == (org, False)
    assert AuditLog.objects.filter(action="domain_claim.create", organization_id=org.id).exists()


def test_an_approved_domain_belongs_to_one_organization(owner_client, outsider, org):
    # A pending claim blocks nobody (tests/accounts_orgs/test_domain_claim_competition.py);
    # an approved one refuses other organizations' claims.
    approved_claim(outsider.default_organization)

    response = owner_client.post(DOMAINS, {"domain": "ACME.test"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "domain_claimed"
    assert DomainClaim.objects.get().organization_id == outsider.default_organization_id


def test_claiming_the_same_domain_twice_is_a_conflict(owner_client):
    assert owner_client.post(DOMAINS, {"domain": "acme.test"}, format="json").status_code == 201
    assert owner_client.post(DOMAINS, {"domain": "acme.test"}, format="json").status_code == 409
    assert DomainClaim.objects.count() == 1


@pytest.mark.parametrize("domain", ["gmail.com", "GoogleMail.com", "gmail.com."])
def test_consumer_domains_are_refused(owner_client, domain):
    response = owner_client.post(DOMAINS, {"domain": domain}, format="json")

    assert response.status_code == 400
    assert "domain" in response.json()["error"]["fields"]
    assert not DomainClaim.objects.exists()


@pytest.mark.parametrize("domain", ["", "localhost", "not a domain", "acme..test", "-acme.test", "http://acme.test"])
def test_malformed_domains_are_refused(owner_client, domain):
    response = owner_client.post(DOMAINS, {"domain": domain}, format="json")

    assert response.status_code == 400
    assert "domain" in response.json()["error"]["fields"]
    assert not DomainClaim.objects.exists()


def test_a_claim_cannot_be_approved_through_the_api(owner_client):
    response = owner_client.post(DOMAINS, {"domain": "acme.test", "approved": True}, format="json")

    assert response.status_code == 400
    assert "approved" in response.json()["error"]["fields"]
    assert not DomainClaim.objects.exists()


def test_list_shows_only_this_organizations_claims(owner_client, org, outsider):
    approved_claim(org, "acme.test")
    DomainClaim.objects.create(organization=outsider.default_organization, domain="globex.test")

    response = owner_client.get(DOMAINS)

    assert response.status_code == 200
    assert [(c["domain"], c["approved"]) for c in response.json()["results"]] == [("acme.test", True)]


def test_a_member_can_neither_list_claim_nor_withdraw(teammate_client, org):
    claim = DomainClaim.objects.create(organization=org, domain="acme.test")

    assert teammate_client.get(DOMAINS).status_code == 403
    assert teammate_client.post(DOMAINS, {"domain": "acme2.test"}, format="json").status_code == 403
    assert teammate_client.delete(f"{DOMAINS}/{claim.id}").status_code == 403
    assert list(DomainClaim.objects.values_list("domain", flat=True)) == ["acme.test"]


def test_owner_withdraws_a_claim(owner_client, org):
    claim = approved_claim(org)

    response = owner_client.delete(f"{DOMAINS}/{claim.id}")

    assert response.status_code == 204
    assert not DomainClaim.objects.exists()
    assert AuditLog.objects.get(action="domain_claim.delete").details == {"domain": "acme.test", "approved": True}


def test_an_outsider_cannot_withdraw_our_claim(outsider_client, org):
    claim = approved_claim(org)

    assert outsider_client.delete(f"{DOMAINS}/{claim.id}").status_code == 404
    assert DomainClaim.objects.filter(id=claim.id, approved=True).exists()


# --- accounts.services.workspace_domain_join ----------------------------------------------


@pytest.fixture
def zoe(db):
    return new_user("zoe@acme.test", "Zoe")


def test_a_verified_workspace_user_joins_the_organization_of_an_approved_claim(org, zoe):
    approved_claim(org)

    membership = workspace_domain_join(user=zoe, email="zoe@acme.test", email_verified=True, hosted_domain="acme.test")

    assert membership is not None
    assert (membership.organization, membership.role) == (org, Role.MEMBER)
    assert Membership.objects.filter(user=zoe, organization=org).count() == 1


@pytest.mark.parametrize(
    ("email", "verified", "hd"),
    [
        ("zoe@acme.test", True, None),  # no hosted domain: not a Workspace account
        ("zoe@acme.test", False, "acme.test"),  # email not verified
        ("zoe@other.test", True, "acme.test"),  # email of another domain than its hd
        ("zoe@acme.test", True, "other.test"),  # hd of another domain
    ],
)
def test_nobody_joins_without_a_verified_email_of_the_matching_hosted_domain(org, zoe, email, verified, hd):
    approved_claim(org)

    assert workspace_domain_join(user=zoe, email=email, email_verified=verified, hosted_domain=hd) is None
    assert not Membership.objects.filter(user=zoe, organization=org).exists()


def test_an_unapproved_claim_absorbs_nobody(org, zoe):
    DomainClaim.objects.create(organization=org, domain="acme.test")

    assert (
        workspace_domain_join(user=zoe, email="zoe@acme.test", email_verified=True, hosted_domain="acme.test") is None
    )
    assert not Membership.objects.filter(user=zoe, organization=org).exists()


@pytest.mark.parametrize("domain", ["gmail.com", "googlemail.com"])
def test_gmail_never_matches_even_a_claim_written_past_the_api(org, domain):
    # The API refuses such claims; even a row put there another way must absorb nobody.
    approved_claim(org, domain)
    user = new_user(f"someone@{domain}")

    assert (
        workspace_domain_join(user=user, email=f"someone@{domain}", email_verified=True, hosted_domain=domain) is None
    )
    assert not Membership.objects.filter(user=user, organization=org).exists()


def test_joining_again_keeps_the_existing_role(org, zoe):
    approved_claim(org)
    join(zoe, org, Role.ADMIN)

    membership = workspace_domain_join(user=zoe, email="zoe@acme.test", email_verified=True, hosted_domain="acme.test")

    assert membership.role == Role.ADMIN
    assert Membership.objects.filter(user=zoe, organization=org).count() == 1


# --- through Google sign-in (accounts.google, Google mocked at its HTTP boundary) ---------


def sign_in_with_id_token(fake_google, client, **claims):
    response = client.post("/api/auth/google/token", {"id_token": fake_google.id_token(**claims)}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_workspace_sign_in_joins_the_approved_organization(fake_google, anon_client, org):
    approved_claim(org)

    body = sign_in_with_id_token(fake_google, anon_client, sub="sub-zoe", email="zoe@acme.test", hd="acme.test")

    zoe = User.objects.get(email="zoe@acme.test")
    assert Membership.objects.get(user=zoe, organization=org).role == Role.MEMBER
    # They land in their personal organization and can switch into the team.
    assert body["organization"]["id"] != str(org.id)
    switched = anon_client.post(
        "/api/auth/switch-organization",
        {"organization_id": str(org.id)},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {body['access']}",
    )
    assert switched.status_code == 200
    assert switched.json()["role"] == "member"


def test_the_code_flow_sign_in_joins_too(fake_google, anon_client, org):
    approved_claim(org)
    login = start_login(anon_client)
    fake_google.will_exchange_code("code-zoe", sub="sub-zoe", email="zoe@acme.test", hd="acme.test")

    response = anon_client.get("/api/auth/google/callback", {"code": "code-zoe", "state": login["state"]})

    assert response.status_code == 200, response.content
    assert Membership.objects.filter(user__email="zoe@acme.test", organization=org).exists()


def test_a_sign_in_without_hd_does_not_join(fake_google, anon_client, org):
    approved_claim(org)

    sign_in_with_id_token(fake_google, anon_client, sub="sub-zoe", email="zoe@acme.test", hd=None)

    assert not Membership.objects.filter(user__email="zoe@acme.test", organization=org).exists()


def test_a_sign_in_matching_an_unapproved_claim_does_not_join(fake_google, anon_client, org):
    DomainClaim.objects.create(organization=org, domain="acme.test")

    sign_in_with_id_token(fake_google, anon_client, sub="sub-zoe", email="zoe@acme.test", hd="acme.test")

    assert not Membership.objects.filter(user__email="zoe@acme.test", organization=org).exists()


def test_a_gmail_sign_in_never_joins(fake_google, anon_client, org):
    approved_claim(org, "gmail.com")

    sign_in_with_id_token(fake_google, anon_client, sub="sub-gina", email="gina@gmail.com", hd="gmail.com")

    assert not Membership.objects.filter(user__email="gina@gmail.com", organization=org).exists()


def test_an_unverified_workspace_email_does_not_join(fake_google, anon_client, org):
    approved_claim(org)

    sign_in_with_id_token(
        fake_google, anon_client, sub="sub-zoe", email="zoe@acme.test", hd="acme.test", email_verified=False
    )

    assert not Membership.objects.filter(user__email="zoe@acme.test", organization=org).exists()
