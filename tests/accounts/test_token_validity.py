"""Removal, demotion and deactivation cut every earlier token: access and refresh tokens
issued before a membership change or a user's (de)activation never work again, also after
a re-admission or re-activation, while tokens issued afterwards (in the same second too)
do. Plus the per-account rate limit an attacker cannot use up with a victim's dead tokens,
and the admin's token pages, which never show a token."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import Membership, Role, User
from accounts.services import unscoped_membership_add, unscoped_membership_change_role
from accounts.tokens import mint_tokens
from raptorflow.models import RateLimitWindow
from tests.accounts_orgs.conftest import operator, site  # noqa: F401  (fixtures)
from tests.accounts_orgs.test_admin_owner_rules import form_data

pytestmark = pytest.mark.django_db


def me(access: str):
    return APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {access}")


def refresh(token: str):
    return APIClient().post("/api/auth/refresh", {"refresh": token}, format="json")


def verify(token: str):
    return APIClient().post("/api/auth/verify-token", {"token": token}, format="json")


@pytest.fixture
def settled(db):
    """Memberships and accounts as they usually are: changed a while ago, so the tokens a
    test mints first carry the second they were minted in. (A token minted within the
    second after a change carries the next second: the test below checks that case.)"""

    def settle():
        a_minute_ago = timezone.now() - timedelta(minutes=1)
        Membership.objects.update(tokens_valid_after=a_minute_ago)
        User.objects.update(tokens_valid_after=a_minute_ago)

    return settle


def assert_refused(tokens: dict) -> None:
    assert me(tokens["access"]).status_code == 401
    assert verify(tokens["access"]).status_code == 401
    assert refresh(tokens["refresh"]).status_code == 401


def assert_working(tokens: dict) -> dict:
    assert me(tokens["access"]).status_code == 200
    assert verify(tokens["access"]).status_code == 200
    rotated = refresh(tokens["refresh"])
    assert rotated.status_code == 200
    assert me(rotated.json()["access"]).status_code == 200
    return rotated.json()


def test_a_removed_then_readmitted_member_keeps_none_of_the_old_tokens(owner_client, teammate, org, owner, settled):
    settled()
    old = mint_tokens(teammate, org)
    removed = owner_client.delete(f"/api/organizations/current/members/{teammate.id}")
    assert removed.status_code == 204

    unscoped_membership_add(organization=org, user=teammate, role=Role.MEMBER, operator=owner)

    assert Membership.objects.filter(user=teammate, organization=org).exists()
    assert_refused(old)
    assert_working(mint_tokens(teammate, org))


def test_a_demoted_admin_keeps_none_of_the_old_tokens(owner_client, teammate, org, settled):
    settled()
    Membership.objects.filter(user=teammate, organization=org).update(role=Role.ADMIN)
    old = mint_tokens(teammate, org)
    assert me(old["access"]).json()["role"] == "admin"

    demoted = owner_client.patch(f"/api/organizations/current/members/{teammate.id}", {"role": "member"}, format="json")

    assert demoted.status_code == 200
    assert_refused(old)
    new = mint_tokens(teammate, org)
    assert me(new["access"]).json()["role"] == "member"
    assert_working(new)


def test_a_role_change_leaves_the_member_s_other_organizations_alone(owner_client, teammate, org):
    personal = mint_tokens(teammate, teammate.memberships.exclude(organization=org).get().organization)

    owner_client.patch(f"/api/organizations/current/members/{teammate.id}", {"role": "admin"}, format="json")

    assert_working(personal)


def test_a_deactivated_user_loses_every_token_and_gets_none_back_when_reactivated(
    site, teammate, org, settled  # noqa: F811
):
    settled()
    old = mint_tokens(teammate, org)
    url = f"/admin/accounts/user/{teammate.pk}/change/"

    data = form_data(site.get(url))
    del data["is_active"]
    assert site.post(url, data).status_code == 302
    assert not User.objects.get(pk=teammate.pk).is_active
    assert_refused(old)

    assert site.post(url, form_data(site.get(url)) | {"is_active": "on"}).status_code == 302
    assert User.objects.get(pk=teammate.pk).is_active
    assert_refused(old)
    assert_working(mint_tokens(teammate, org))


def test_tokens_minted_in_the_second_of_a_change_work_and_earlier_ones_do_not(teammate, org, settled):
    settled()
    before = mint_tokens(teammate, org)
    membership = Membership.objects.get(user=teammate, organization=org)
    unscoped_membership_change_role(membership=membership, role=Role.ADMIN, operator=teammate)
    after = mint_tokens(teammate, org)

    assert AccessToken(after["access"])["iat"] >= AccessToken(before["access"])["iat"]
    assert_refused(before)
    assert_working(after)


# --- nobody can use up a victim's per-account limit with the victim's dead tokens ----------


@pytest.fixture
def account_limit(settings):
    cache.clear()
    settings.RATE_LIMITS = {"auth_account": "3/hour"}


def dead_tokens(user, organization) -> list[str]:
    """A victim's tokens an attacker might hold: rotated out, logged out, expired."""
    rotated_out = mint_tokens(user, organization)
    assert refresh(rotated_out["refresh"]).status_code == 200
    logged_out = mint_tokens(user, organization)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {logged_out['access']}")
    assert client.post("/api/auth/logout", {"refresh": logged_out["refresh"]}, format="json").status_code == 204
    expired = RefreshToken()
    expired["user_id"], expired["org_id"] = str(user.pk), str(organization.pk)
    expired.set_exp(lifetime=timedelta(seconds=-5))
    return [rotated_out["refresh"], logged_out["refresh"], logged_out["access"], str(expired)]


def test_replaying_a_victim_s_dead_tokens_does_not_use_up_the_victim_s_limit(
    account_limit, teammate, org, settled
):
    settled()
    dead = dead_tokens(teammate, org)
    RateLimitWindow.objects.all().delete()  # the victim's own requests above counted; the attacker starts now

    for _ in range(5):
        for token in dead:
            field = "token" if token_type_of(token) == "access" else "refresh"
            endpoint = "/api/auth/verify-token" if field == "token" else "/api/auth/refresh"
            assert APIClient().post(endpoint, {field: token}, format="json").status_code == 401

    # The victim's valid requests still pass, up to the limit, which still holds.
    access = mint_tokens(teammate, org)["access"]
    assert [verify(access).status_code for _ in range(4)] == [200, 200, 200, 429]


def token_type_of(raw: str) -> str:
    import jwt

    return jwt.decode(raw, options={"verify_signature": False})["token_type"]


def test_a_removed_member_s_old_token_does_not_count_against_their_new_membership(
    account_limit, teammate, org, settled
):
    settled()
    old = mint_tokens(teammate, org)["access"]
    Membership.objects.filter(user=teammate, organization=org).delete()
    Membership.objects.create(user=teammate, organization=org, role=Role.MEMBER)

    assert [verify(old).status_code for _ in range(5)] == [401] * 5

    access = mint_tokens(teammate, org)["access"]
    assert [verify(access).status_code for _ in range(3)] == [200, 200, 200]


# --- the admin never shows a usable refresh token ---------------------------------------------


@pytest.mark.parametrize("legacy", [False, True], ids=["issued", "stored-by-simplejwt"])
def test_the_token_admin_pages_never_show_a_token(site, owner, org, legacy):  # noqa: F811
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

    if legacy:
        # simplejwt's own for_user() stores the token it issues.
        token = RefreshToken.for_user(owner)
        token["org_id"] = str(org.id)
        raw = str(token)
        assert OutstandingToken.objects.filter(token__contains=raw.split(".")[0]).exists()
    else:
        raw = mint_tokens(owner, org)["refresh"]
    jti = RefreshToken(raw)["jti"]
    other = mint_tokens(owner, org)["refresh"]
    assert refresh(other).status_code == 200  # a blacklisted token too
    outstanding = OutstandingToken.objects.get(jti=jti)
    BlacklistedToken.objects.create(token=outstanding)
    blacklisted = BlacklistedToken.objects.get(token=outstanding)
    secrets = [raw, other, raw.split(".")[2], other.split(".")[2]]

    pages = [
        "/admin/token_blacklist/outstandingtoken/",
        f"/admin/token_blacklist/outstandingtoken/?q={jti}",
        f"/admin/token_blacklist/outstandingtoken/?q={owner.email}",
        f"/admin/token_blacklist/outstandingtoken/{outstanding.pk}/change/",
        "/admin/token_blacklist/blacklistedtoken/",
        f"/admin/token_blacklist/blacklistedtoken/?q={jti}",
        f"/admin/token_blacklist/blacklistedtoken/{blacklisted.pk}/change/",
    ]
    for page in pages:
        response = site.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert jti in html, page
        assert not [secret for secret in secrets if secret in html], page

    # Searching for a token's text finds nothing: the field is not searched.
    payload = raw.split(".")[1][:40]
    for changelist in ("outstandingtoken", "blacklistedtoken"):
        html = site.get(f"/admin/token_blacklist/{changelist}/?q={payload}").content.decode()
        assert jti not in html


def test_the_per_account_limit_asks_accounts_whether_a_token_still_works():
    from accounts.tokens import token_is_live
    from raptorflow import hooks

    assert hooks.token_is_live.receivers == (token_is_live,)
