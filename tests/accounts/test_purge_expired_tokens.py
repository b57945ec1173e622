"""`manage.py purge_expired_tokens` deletes the token rows that can no longer matter and
nothing a live sign-in needs: tokens that still work keep working after it."""

from datetime import timedelta

import jwt
import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import RevokedAccessToken, TokenFamily
from accounts.tokens import FAMILY_CLAIM, mint_tokens
from tests.accounts.test_token_validity import assert_working, me

pytestmark = pytest.mark.django_db


def claims(raw: str) -> dict:
    return jwt.decode(raw, options={"verify_signature": False})


def family_of(tokens: dict) -> TokenFamily:
    return TokenFamily.objects.get(pk=RefreshToken(tokens["refresh"])[FAMILY_CLAIM])


def age(family: TokenFamily, *, days: int, expired: bool) -> None:
    """Moves a sign-in back in time: created `days` ago, its current refresh token expired
    or not (what the clock would have done; nothing else is touched)."""
    now = timezone.now()
    TokenFamily.objects.filter(pk=family.pk).update(created_at=now - timedelta(days=days))
    OutstandingToken.objects.filter(jti=family.current_jti).update(
        expires_at=now - timedelta(hours=1) if expired else now + timedelta(days=1)
    )


def test_purging_deletes_dead_sign_ins_and_expired_rows_and_live_tokens_keep_working(owner, org, capsys):
    live = mint_tokens(owner, org)
    dead = mint_tokens(owner, org)
    old_but_rotated = mint_tokens(owner, org)
    logged_out = mint_tokens(owner, org)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {logged_out['access']}")
    assert client.post("/api/auth/logout", {"refresh": logged_out["refresh"]}, format="json").status_code in (200, 204)
    RevokedAccessToken.objects.create(jti="expired-long-ago", expires_at=timezone.now() - timedelta(days=1))
    age(family_of(dead), days=30, expired=True)
    age(family_of(old_but_rotated), days=30, expired=False)
    dead_jti = family_of(dead).current_jti

    call_command("purge_expired_tokens")

    assert "token_families: 1 deleted" in capsys.readouterr().out
    assert not TokenFamily.objects.filter(current_jti=dead_jti).exists()
    assert not OutstandingToken.objects.filter(jti=dead_jti).exists()
    assert not RevokedAccessToken.objects.filter(jti="expired-long-ago").exists()
    # The logout still holds: its access token is refused until it expires, its refresh token
    # stays blacklisted until it does.
    assert RevokedAccessToken.objects.filter(jti=claims(logged_out["access"])["jti"]).exists()
    assert me(logged_out["access"]).status_code == 401
    assert BlacklistedToken.objects.filter(token__jti=claims(logged_out["refresh"])["jti"]).exists()
    assert_working(live)
    assert_working(old_but_rotated)
