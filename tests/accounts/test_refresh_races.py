"""Refresh tokens are single-use, also under concurrency, and a rotated-out token presented
again is detected (OAuth 2.0 Security BCP): refused within the grace period, and after it,
the end of every token of that sign-in."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Membership, User
from accounts.services import user_create_with_personal_organization
from accounts.tokens import mint_tokens
from raptorflow.models import AuditLog
from tests.concurrency import run_together

PARALLEL = 5
TRIALS = 50


def refresh(token: str):
    return APIClient().post("/api/auth/refresh", {"refresh": token}, format="json")


def me(access: str):
    return APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {access}")


@pytest.fixture
def no_rate_limits(settings):
    # Hundreds of refreshes from one address and account: the limits are tested elsewhere.
    settings.RATE_LIMITS = {}


@pytest.mark.django_db(transaction=True)
def test_of_parallel_refreshes_with_one_token_exactly_one_wins_and_its_tokens_work(no_rate_limits):
    user = user_create_with_personal_organization(email="racer@acme.test", name="Racer")
    token = mint_tokens(user, user.default_organization)["refresh"]

    for trial in range(TRIALS):
        responses = run_together(*[lambda token=token: refresh(token) for _ in range(PARALLEL)])

        assert not [r for r in responses if isinstance(r, Exception)], responses
        winners = [r for r in responses if r.status_code == 200]
        losers = [r for r in responses if r.status_code != 200]
        assert len(winners) == 1, (trial, [(r.status_code, r.content) for r in responses])
        assert [r.status_code for r in losers] == [401] * (PARALLEL - 1)
        assert {r.json()["error"]["code"] for r in losers} == {"refresh_token_reused"}
        tokens = winners[0].json()
        assert me(tokens["access"]).status_code == 200
        # The winner's refresh token is the next trial's: it works, once.
        token = tokens["refresh"]

    assert refresh(token).status_code == 200
    assert not AuditLog.objects.filter(action="auth.refresh_token_reuse").exists()


@pytest.mark.django_db
def test_reuse_within_the_grace_period_is_refused_and_revokes_nothing(owner, org):
    old = mint_tokens(owner, org)["refresh"]
    new = refresh(old).json()

    again = refresh(old)

    assert again.status_code == 401
    assert again.json()["error"]["code"] == "refresh_token_reused"
    assert me(new["access"]).status_code == 200
    assert refresh(new["refresh"]).status_code == 200
    assert not AuditLog.objects.filter(action="auth.refresh_token_reuse").exists()


@pytest.mark.django_db
def test_reuse_after_the_grace_period_revokes_the_whole_sign_in_and_is_audited(owner, org, settings):
    settings.REFRESH_REUSE_GRACE_SECONDS = 0
    stolen = mint_tokens(owner, org)
    rotated = refresh(stolen["refresh"]).json()
    latest = refresh(rotated["refresh"]).json()
    other_sign_in = mint_tokens(owner, org)

    replay = refresh(stolen["refresh"])

    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "refresh_token_reused"
    # Every token descended from that sign-in stops working ...
    for access in (stolen["access"], rotated["access"], latest["access"]):
        assert me(access).status_code == 401
    assert refresh(latest["refresh"]).status_code == 401
    verify = APIClient().post("/api/auth/verify-token", {"token": latest["access"]}, format="json")
    assert verify.status_code == 401
    # ... and the reuse is on record, once.
    entry = AuditLog.objects.get(action="auth.refresh_token_reuse")
    assert entry.actor_id == owner.pk
    assert entry.organization_id == org.pk
    assert entry.target_id == str(owner.pk)
    # Another sign-in of the same user is untouched.
    assert me(other_sign_in["access"]).status_code == 200
    assert refresh(other_sign_in["refresh"]).status_code == 200


@pytest.mark.django_db
def test_a_logged_out_refresh_token_stays_refused_without_revoking_other_sign_ins(owner, org, settings):
    settings.REFRESH_REUSE_GRACE_SECONDS = 0
    session = mint_tokens(owner, org)
    other_sign_in = mint_tokens(owner, org)
    logout = APIClient()
    logout.credentials(HTTP_AUTHORIZATION=f"Bearer {session['access']}")
    assert logout.post("/api/auth/logout", {"refresh": session["refresh"]}, format="json").status_code == 204

    again = refresh(session["refresh"])

    assert again.status_code == 401
    assert again.json()["error"]["code"] == "token_not_valid"
    assert me(other_sign_in["access"]).status_code == 200
    assert refresh(other_sign_in["refresh"]).status_code == 200


@pytest.mark.django_db
def test_a_refresh_token_issued_before_token_families_is_rotated_once(owner, org):
    from rest_framework_simplejwt.tokens import RefreshToken

    # Signed in a while ago, before token families: outstanding, as sign-ins stored them.
    Membership.objects.filter(user=owner).update(tokens_valid_after=timezone.now() - timedelta(minutes=1))
    User.objects.filter(pk=owner.pk).update(tokens_valid_after=timezone.now() - timedelta(minutes=1))
    legacy = RefreshToken.for_user(owner)
    legacy["org_id"] = str(org.id)

    first = refresh(str(legacy))
    second = refresh(str(legacy))

    assert first.status_code == 200
    assert me(first.json()["access"]).status_code == 200
    assert second.status_code == 401
    assert refresh(first.json()["refresh"]).status_code == 200
