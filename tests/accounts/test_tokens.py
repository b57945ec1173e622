import base64
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import Membership, User

pytestmark = pytest.mark.django_db


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_me_returns_user_organization_and_role(owner_client, owner, org):
    response = owner_client.get("/api/auth/me")
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["id"] == str(owner.id)
    assert body["user"]["email"] == "olivia@acme.test"
    assert body["organization"]["id"] == str(org.id)
    assert body["role"] == "owner"


def test_access_token_claims_are_user_org_jti_exp_iat_type_and_no_role(owner_client, owner, org):
    claims = AccessToken(owner_client.tokens["access"]).payload
    assert claims["user_id"] == str(owner.id)
    assert claims["org_id"] == str(org.id)
    assert claims["token_type"] == "access"
    assert {"jti", "exp", "iat"} <= set(claims)
    assert "role" not in claims
    assert claims["exp"] - claims["iat"] == 15 * 60


def test_requests_without_a_token_get_401_json(anon_client, db):
    response = anon_client.get("/api/auth/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_expired_access_token_is_401(owner, org):
    token = AccessToken.for_user(owner)
    token["org_id"] = str(org.id)
    token.set_exp(lifetime=timedelta(seconds=-1))
    response = bearer(str(token)).get("/api/auth/me")
    assert response.status_code == 401


def test_alg_none_token_is_401(owner, org):
    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = AccessToken(str(AccessToken.for_user(owner))).payload | {"org_id": str(org.id)}
    forged = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    assert bearer(forged).get("/api/auth/me").status_code == 401


def test_token_signed_with_another_key_is_401(owner, org):
    import jwt

    claims = AccessToken(str(AccessToken.for_user(owner))).payload | {"org_id": str(org.id)}
    forged = jwt.encode(claims, "not-our-secret-not-our-secret-not-our-secret", algorithm="HS256")
    assert bearer(forged).get("/api/auth/me").status_code == 401


def test_refresh_token_is_not_accepted_as_access_token(owner_client):
    assert bearer(owner_client.tokens["refresh"]).get("/api/auth/me").status_code == 401


def test_refresh_rotates_and_the_old_refresh_token_is_then_refused(owner_client, anon_client):
    old = owner_client.tokens["refresh"]
    first = anon_client.post("/api/auth/refresh", {"refresh": old}, format="json")
    assert first.status_code == 200
    body = first.json()
    assert body["refresh"] != old
    assert body["token_type"] == "Bearer"
    assert bearer(body["access"]).get("/api/auth/me").status_code == 200
    # Reusing the rotated-out token is refused; the new one still works.
    assert anon_client.post("/api/auth/refresh", {"refresh": old}, format="json").status_code == 401
    assert anon_client.post("/api/auth/refresh", {"refresh": body["refresh"]}, format="json").status_code == 200


def test_refreshed_access_token_keeps_the_organization(owner_client, anon_client, org):
    body = anon_client.post("/api/auth/refresh", {"refresh": owner_client.tokens["refresh"]}, format="json").json()
    assert AccessToken(body["access"])["org_id"] == str(org.id)


def test_logout_blacklists_refresh_and_revokes_the_access_token(owner_client, anon_client):
    refresh = owner_client.tokens["refresh"]
    response = owner_client.post("/api/auth/logout", {"refresh": refresh}, format="json")
    assert response.status_code == 204
    assert anon_client.post("/api/auth/refresh", {"refresh": refresh}, format="json").status_code == 401
    assert owner_client.get("/api/auth/me").status_code == 401


def test_logout_with_someone_elses_refresh_token_is_refused(owner_client, outsider_client, anon_client):
    response = owner_client.post("/api/auth/logout", {"refresh": outsider_client.tokens["refresh"]}, format="json")
    assert response.status_code == 401
    refreshed = anon_client.post("/api/auth/refresh", {"refresh": outsider_client.tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200


def test_logout_without_refresh_names_the_field(owner_client):
    response = owner_client.post("/api/auth/logout", {}, format="json")
    assert response.status_code == 400
    assert "refresh" in response.json()["error"]["fields"]


def test_deactivated_user_loses_access_and_refresh_at_once(owner_client, anon_client, owner):
    User.objects.filter(pk=owner.pk).update(is_active=False)
    assert owner_client.get("/api/auth/me").status_code == 401
    refresh = anon_client.post("/api/auth/refresh", {"refresh": owner_client.tokens["refresh"]}, format="json")
    assert refresh.status_code == 401
    verify = anon_client.post("/api/auth/verify-token", {"token": owner_client.tokens["access"]}, format="json")
    assert verify.status_code == 401


def test_removed_member_token_stops_working_at_once(teammate_client, teammate, org):
    assert teammate_client.get("/api/auth/me").status_code == 200
    Membership.objects.filter(user=teammate, organization=org).delete()
    assert teammate_client.get("/api/auth/me").status_code == 401


def test_verify_token_answers_for_valid_and_invalid_tokens(owner_client, anon_client, owner):
    ok = anon_client.post("/api/auth/verify-token", {"token": owner_client.tokens["access"]}, format="json")
    assert ok.status_code == 200
    assert ok.json()["valid"] is True
    assert ok.json()["user_id"] == str(owner.id)
    assert ok.json()["exp"] == AccessToken(owner_client.tokens["access"])["exp"]
    bad = anon_client.post("/api/auth/verify-token", {"token": "not.a.jwt"}, format="json")
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "token_not_valid"


def test_issue_token_creates_the_user_and_prints_working_tokens(capsys, db):
    call_command("issue_token", "Newbie@Example.com")
    out = dict(line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines())
    user = User.objects.get(email="newbie@example.com")
    assert out["user"] == str(user.id)
    me = bearer(out["access"]).get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["role"] == "owner"
    assert APIClient().post("/api/auth/refresh", {"refresh": out["refresh"]}, format="json").status_code == 200


def test_issue_token_reuses_an_existing_user(capsys, owner):
    call_command("issue_token", owner.email)
    assert User.objects.count() == 1
