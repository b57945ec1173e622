"""Minting, refreshing and revoking the API's JWTs (djangorestframework-simplejwt).

Access claims: user_id, org_id, jti, exp, iat, token_type. There is deliberately no role
claim: the role is read from the membership on every request, so a demotion or removal
takes effect at once.
"""

from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

ORG_CLAIM = "org_id"
_REVOKED_PREFIX = "revoked-access-jti:"


def mint_tokens(user, organization) -> dict:
    refresh = RefreshToken.for_user(user)
    refresh[ORG_CLAIM] = str(organization.id)
    access = refresh.access_token
    return {
        "access": str(access),
        "refresh": str(refresh),
        "token_type": "Bearer",
        "expires_in": int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()),
    }


def parse_refresh(raw: str) -> RefreshToken:
    """A valid, unexpired, not blacklisted refresh token, or 401."""
    try:
        return RefreshToken(raw)
    except TokenError as exc:
        raise AuthenticationFailed("Refresh token is invalid, expired or revoked.", code="token_not_valid") from exc


def parse_access(raw: str) -> AccessToken:
    """A valid, unexpired, not revoked access token, or 401."""
    try:
        token = AccessToken(raw)
    except TokenError as exc:
        raise AuthenticationFailed("Access token is invalid or expired.", code="token_not_valid") from exc
    if is_access_revoked(token["jti"]):
        raise AuthenticationFailed("Access token has been revoked.", code="token_not_valid")
    return token


def rotate_refresh(refresh: RefreshToken) -> dict:
    """A new access token and a new refresh token; the old refresh token is blacklisted,
    so presenting it again is refused."""
    refresh.blacklist()
    refresh.set_jti()
    refresh.set_exp()
    refresh.set_iat()
    refresh.outstand()
    return {
        "access": str(refresh.access_token),
        "refresh": str(refresh),
        "token_type": "Bearer",
        "expires_in": int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()),
    }


def revoke_access(token: AccessToken) -> None:
    """Refuses this access token's jti until it would have expired anyway (shared cache,
    so every instance sees it)."""
    remaining = int(token["exp"] - datetime.now(tz=UTC).timestamp()) + 1
    if remaining > 0:
        cache.set(_REVOKED_PREFIX + token["jti"], 1, timeout=remaining)


def is_access_revoked(jti: str) -> bool:
    return cache.get(_REVOKED_PREFIX + jti) is not None
