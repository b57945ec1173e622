import base64
import hashlib
import re

import pytest
from allauth.socialaccount.models import SocialAccount

from accounts.models import Membership, Organization, Role, User
from accounts.services import user_create_with_personal_organization
from tests.accounts.conftest import CLIENT_ID, OTHER_KEY, start_login

pytestmark = pytest.mark.django_db


def test_login_is_refused_with_503_while_google_is_not_configured(anon_client):
    response = anon_client.post("/api/auth/google/login")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_configured"
    assert "GOOGLE_CLIENT_ID" in response.json()["error"]["message"]


def test_authorization_url_carries_client_id_redirect_uri_state_and_pkce(fake_google, anon_client):
    login = start_login(anon_client)
    params = login["params"]
    assert login["authorization_url"].startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == "http://testserver/api/auth/google/callback"
    assert params["state"] == login["state"]
    assert params["response_type"] == "code"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) >= 43
    assert set(params["scope"].split()) == {"openid", "profile", "email"}


def test_login_also_answers_get(fake_google, anon_client):
    response = anon_client.get("/api/auth/google/login")
    assert response.status_code == 200
    assert response.json()["state"]


def test_first_callback_creates_user_personal_org_owner_membership_and_linked_account(fake_google, anon_client):
    login = start_login(anon_client)
    fake_google.will_exchange_code("code-1", sub="sub-olivia", email="Olivia@Acme.test", name="Olivia")

    response = anon_client.get("/api/auth/google/callback", {"code": "code-1", "state": login["state"]})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert body["role"] == "owner"
    assert body["user"]["email"] == "olivia@acme.test"
    user = User.objects.get(email="olivia@acme.test")
    organization = Organization.objects.get(id=body["organization"]["id"])
    assert organization.is_personal
    assert Membership.objects.get(user=user, organization=organization).role == Role.OWNER
    assert SocialAccount.objects.get(provider="google", uid="sub-olivia").user == user
    # The PKCE verifier sent to Google matches the challenge in the authorization URL.
    token_request = fake_google.token_requests()[0]
    verifier = dict(pair.split("=") for pair in token_request.body.split("&"))["code_verifier"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == login["params"]["code_challenge"]
    # The tokens work.
    me = anon_client.get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert me.status_code == 200
    assert me.json()["organization"]["id"] == str(organization.id)


def test_second_login_reuses_the_user_and_organization(fake_google, anon_client):
    for code in ("code-a", "code-b"):
        login = start_login(anon_client)
        fake_google.will_exchange_code(code, sub="sub-olivia")
        response = anon_client.get("/api/auth/google/callback", {"code": code, "state": login["state"]})
        assert response.status_code == 200
    assert User.objects.count() == 1
    assert Organization.objects.count() == 1
    assert SocialAccount.objects.count() == 1


@pytest.mark.parametrize("state", ["", "forged-state"])
def test_callback_with_missing_or_wrong_state_is_refused_and_creates_nothing(fake_google, anon_client, state):
    start_login(anon_client)
    fake_google.will_exchange_code("code-1")
    response = anon_client.get("/api/auth/google/callback", {"code": "code-1", "state": state})
    assert response.status_code == 400
    assert "state" in response.json()["error"]["fields"]
    assert User.objects.count() == 0
    assert fake_google.token_requests() == []


def test_state_is_single_use(fake_google, anon_client):
    login = start_login(anon_client)
    fake_google.will_exchange_code("code-1")
    first = anon_client.get("/api/auth/google/callback", {"code": "code-1", "state": login["state"]})
    second = anon_client.get("/api/auth/google/callback", {"code": "code-1", "state": login["state"]})
    assert first.status_code == 200
    assert second.status_code == 400


def test_a_code_google_rejects_is_a_401_and_creates_nothing(fake_google, anon_client):
    login = start_login(anon_client)
    fake_google.will_exchange_code("the-real-code")
    response = anon_client.get("/api/auth/google/callback", {"code": "wrong-code", "state": login["state"]})
    assert response.status_code == 401
    assert User.objects.count() == 0


def test_unverified_google_email_never_takes_over_an_existing_account(fake_google, anon_client):
    existing = user_create_with_personal_organization(email="olivia@acme.test")
    login = start_login(anon_client)
    fake_google.will_exchange_code("code-1", sub="attacker-sub", email="olivia@acme.test", email_verified=False)

    response = anon_client.get("/api/auth/google/callback", {"code": "code-1", "state": login["state"]})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_unverified"
    assert not SocialAccount.objects.filter(user=existing).exists()


def test_verified_google_email_links_to_the_existing_account(fake_google, anon_client):
    existing = user_create_with_personal_organization(email="olivia@acme.test")
    login = start_login(anon_client)
    fake_google.will_exchange_code("code-1", sub="olivia-sub", email="olivia@acme.test")
    response = anon_client.get("/api/auth/google/callback", {"code": "code-1", "state": login["state"]})
    assert response.status_code == 200
    assert response.json()["user"]["id"] == str(existing.id)
    assert SocialAccount.objects.get(uid="olivia-sub").user == existing


def test_deactivated_user_cannot_sign_in_with_google(fake_google, anon_client):
    login = start_login(anon_client)
    fake_google.will_exchange_code("code-1", sub="sub-olivia")
    anon_client.get("/api/auth/google/callback", {"code": "code-1", "state": login["state"]})
    User.objects.update(is_active=False)
    login = start_login(anon_client)
    fake_google.will_exchange_code("code-2", sub="sub-olivia")
    response = anon_client.get("/api/auth/google/callback", {"code": "code-2", "state": login["state"]})
    assert response.status_code == 401


# --- ID-token flow (@react-oauth/google) ------------------------------------------------


def test_good_id_token_signs_in(fake_google, anon_client):
    response = anon_client.post("/api/auth/google/token", {"id_token": fake_google.id_token()}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["user"]["email"] == "olivia@acme.test"
    assert response.json()["role"] == "owner"


def test_id_token_with_the_bare_issuer_spelling_is_accepted(fake_google, anon_client):
    token = fake_google.id_token(iss="accounts.google.com")
    response = anon_client.post("/api/auth/google/token", {"id_token": token}, format="json")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "someone-else.apps.googleusercontent.com"},
        {"iss": "https://evil.example.com"},
        {"exp": 1_000_000_000, "iat": 999_999_000},
        {"key": OTHER_KEY},
    ],
    ids=["wrong-audience", "wrong-issuer", "expired", "bad-signature"],
)
def test_bad_id_tokens_are_refused_and_create_nothing(fake_google, anon_client, overrides):
    token = fake_google.id_token(**overrides)
    response = anon_client.post("/api/auth/google/token", {"id_token": token}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "google_token_invalid"
    assert User.objects.count() == 0


def test_id_token_replay_is_refused(fake_google, anon_client):
    token = fake_google.id_token()
    assert anon_client.post("/api/auth/google/token", {"id_token": token}, format="json").status_code == 200
    assert anon_client.post("/api/auth/google/token", {"id_token": token}, format="json").status_code == 401


def test_id_token_body_must_name_the_token(fake_google, anon_client):
    response = anon_client.post("/api/auth/google/token", {"credential": "x"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"id_token", "credential"}


def test_workspace_sign_in_joins_the_approved_domain_and_is_audited(fake_google, anon_client):
    from accounts.models import DomainClaim
    from accounts.services import organization_create
    from raptorflow.models import AuditLog

    founder = user_create_with_personal_organization(email="founder@acme.test")
    team = organization_create(name="Acme Marketing", owner=founder)
    DomainClaim.objects.create(organization=team, domain="acme.test", approved=True)

    token = fake_google.id_token(sub="sub-new", email="new.hire@acme.test", hd="acme.test")
    response = anon_client.post("/api/auth/google/token", {"id_token": token}, format="json")

    assert response.status_code == 200
    hire = User.objects.get(email="new.hire@acme.test")
    assert Membership.objects.get(user=hire, organization=team).role == Role.MEMBER
    entry = AuditLog.objects.get(action="organization.workspace_join")
    assert (entry.actor_id, entry.organization_id, entry.details["domain"]) == (hire.id, team.id, "acme.test")


def test_a_removed_member_is_not_added_back_by_the_workspace_domain(fake_google, anon_client):
    from accounts.models import DomainClaim
    from accounts.services import organization_create
    from tests.conftest import make_client

    founder = user_create_with_personal_organization(email="founder@acme.test")
    team = organization_create(name="Acme Marketing", owner=founder)
    DomainClaim.objects.create(organization=team, domain="acme.test", approved=True)

    def sign_in():
        token = fake_google.id_token(sub="sub-hire", email="hire@acme.test", hd="acme.test")
        return anon_client.post("/api/auth/google/token", {"id_token": token}, format="json")

    assert sign_in().status_code == 200
    hire = User.objects.get(email="hire@acme.test")
    removed = make_client(founder, team).delete(f"/api/organizations/current/members/{hire.id}")
    assert removed.status_code == 204

    assert sign_in().status_code == 200
    assert not Membership.objects.filter(user=hire, organization=team).exists()


def test_an_accepted_invitation_lifts_the_workspace_exclusion(fake_google, anon_client):
    from accounts.models import DomainClaim, WorkspaceExclusion
    from accounts.services import organization_create
    from tests.conftest import make_client

    founder = user_create_with_personal_organization(email="founder@acme.test")
    team = organization_create(name="Acme Marketing", owner=founder)
    DomainClaim.objects.create(organization=team, domain="acme.test", approved=True)
    token = fake_google.id_token(sub="sub-hire", email="hire@acme.test", hd="acme.test")
    anon_client.post("/api/auth/google/token", {"id_token": token}, format="json")
    hire = User.objects.get(email="hire@acme.test")
    founder_client = make_client(founder, team)
    founder_client.delete(f"/api/organizations/current/members/{hire.id}")
    assert WorkspaceExclusion.objects.filter(user=hire, organization=team).exists()

    from django.core import mail

    invited = founder_client.post(
        "/api/organizations/current/invitations", {"email": "hire@acme.test", "role": "member"}, format="json"
    )
    assert invited.status_code == 201
    link_token = re.search(r"/invitations/([A-Za-z0-9_-]+)", mail.outbox[-1].body).group(1)
    accepted = make_client(hire).post(f"/api/invitations/{link_token}/accept", {}, format="json")

    assert accepted.status_code in (200, 201), accepted.content
    assert Membership.objects.filter(user=hire, organization=team).exists()
    assert not WorkspaceExclusion.objects.filter(user=hire, organization=team).exists()
