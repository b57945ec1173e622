"""Minting, refreshing and revoking the API's JWTs (djangorestframework-simplejwt).

Access claims: user_id, org_id, jti, exp, iat, token_type, and `fam`, the sign-in the token
descends from. There is deliberately no role claim: the role is read from the membership
on every request, so a demotion or removal takes effect at once.

Every sign-in starts a token family (accounts.models.TokenFamily), named by the `fam` claim
and carried through rotations. A refresh token is single-use: a rotation takes the family
row's lock, so of any number of concurrent refreshes with one token exactly one wins and the
others find it rotated. A rotated-out token presented again within
REFRESH_REUSE_GRACE_SECONDS (two tabs refreshing at once) is refused with
`refresh_token_reused` and revokes nothing; presented later, it is taken as stolen (OAuth 2.0
Security BCP, refresh token rotation): the family's current refresh token is blacklisted,
its access tokens are refused (authentication checks the family with the membership), and
the reuse is audited.

Tokens issued before their membership was created or changed, or before their user was
(de)activated, never work again: their `iat` (whole seconds) is compared with the
`tokens_valid_after` of both, and tokens are minted with an `iat` of at least those, so a
token minted in the second of a change still works.
"""

import random
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import Membership, RevokedAccessToken, TokenFamily
from accounts.selectors import active_membership
from raptorflow import audit

ORG_CLAIM = "org_id"
FAMILY_CLAIM = "fam"
# Rows of revoked access tokens past their expiry are deleted now and then, by the logouts.
_PURGE_PROBABILITY = 0.01


class _UncheckedRefreshToken(RefreshToken):
    """A refresh token whose signature, expiry and type are checked on parsing, but whose
    blacklisting is judged by rotate_refresh under the family's lock (a rotated-out token
    is a reuse, not merely an invalid token)."""

    def check_blacklist(self) -> None:
        pass


def mint_tokens(user, organization) -> dict:
    """The tokens of a new sign-in (or organization switch): a new token family."""
    valid_after = (
        Membership.objects.filter(user=user, organization=organization)
        .values_list("tokens_valid_after", "user__tokens_valid_after")
        .first()
    )
    refresh = RefreshToken()
    refresh[settings.SIMPLE_JWT["USER_ID_CLAIM"]] = str(user.pk)
    refresh[ORG_CLAIM] = str(organization.id)
    family = TokenFamily(user=user)
    refresh[FAMILY_CLAIM] = str(family.pk)
    _reissue(refresh, not_before=max(valid_after) if valid_after else None)
    family.current_jti = refresh["jti"]
    with transaction.atomic():
        family.save(force_insert=True)
        _outstand(refresh, user_id=user.pk)
    return _pair(refresh)


def parse_refresh(raw: str) -> RefreshToken:
    """A valid, unexpired, not blacklisted refresh token, or 401."""
    try:
        return RefreshToken(raw)
    except TokenError as exc:
        raise _invalid_refresh() from exc


def parse_access(raw: str) -> AccessToken:
    """A valid, unexpired access token, or 401. Whether it was revoked is checked with the
    membership, in the same query (membership_of, TenantJWTAuthentication)."""
    try:
        return AccessToken(raw)
    except TokenError as exc:
        raise AuthenticationFailed("Access token is invalid or expired.", code="token_not_valid") from exc


def membership_of(token) -> Membership:
    """The membership a token (access or refresh) still stands for, or 401: its user is
    active, still a member, neither changed since the token was issued, its sign-in not
    revoked and, for an access token, the token itself not revoked. One query."""
    is_access = token.get("token_type") == "access"
    membership = active_membership(
        token.get(settings.SIMPLE_JWT["USER_ID_CLAIM"]),
        token.get(ORG_CLAIM),
        issued_at=token.get("iat"),
        family_id=token.get(FAMILY_CLAIM),
        access_jti=token.get("jti") if is_access else None,
    )
    if membership is None:
        if is_access and is_access_revoked(token.get("jti")):
            # Only on the way out: say why, as before the check joined the membership's query.
            raise AuthenticationFailed("Access token has been revoked.", code="token_not_valid")
        raise AuthenticationFailed("This account or membership is no longer active.", code="user_inactive")
    return membership


def rotate_refresh(raw: str) -> dict:
    """A new access token and a new refresh token for a current refresh token, which is
    blacklisted. Exactly one of concurrent rotations with one token wins; the others, and
    any later reuse, get 401 `refresh_token_reused` (after the grace period the reuse also
    revokes the token's family)."""
    try:
        refresh = _UncheckedRefreshToken(raw)
    except TokenError as exc:
        raise _invalid_refresh() from exc
    with transaction.atomic():
        family = _locked_family(refresh)
        if family is None or family.revoked_at is not None:
            raise _invalid_refresh()
        if refresh["jti"] != family.current_jti:
            if _rotated_within_grace(refresh["jti"]):
                raise _reused()
            _revoke_family(family, organization_id=refresh.get(ORG_CLAIM))
            revoked = True
        else:
            revoked = False
            membership = membership_of(refresh)
            _blacklist_once(refresh["jti"])
            _reissue(refresh, not_before=max(membership.tokens_valid_after, membership.user.tokens_valid_after))
            family.current_jti = refresh["jti"]
            family.save(update_fields=["current_jti"])
            _outstand(refresh, user_id=family.user_id)
    if revoked:
        # Outside the transaction: the revocation and its audit entry are committed.
        raise _reused()
    return _pair(refresh)


def revoke_access(token: AccessToken) -> None:
    """Refuses this access token's jti until it would have expired anyway (a row every
    instance sees; authentication checks it in the membership's query)."""
    expires_at = datetime_from_epoch(token["exp"])
    now = timezone.now()
    if expires_at <= now:
        return
    RevokedAccessToken.objects.bulk_create(
        [RevokedAccessToken(jti=token["jti"], expires_at=expires_at)], ignore_conflicts=True
    )
    if random.random() < _PURGE_PROBABILITY:
        RevokedAccessToken.objects.filter(expires_at__lt=now).delete()


def purge_expired_tokens() -> dict[str, int]:
    """Deletes the token rows that can no longer matter (manage.py purge_expired_tokens, run
    daily): revoked access tokens past their expiry, outstanding refresh tokens past theirs
    (with their blacklist entries), and sign-ins whose current refresh token has expired.
    A family is deleted only then, revoked or not: its access tokens, issued with a refresh
    token and living ACCESS_TOKEN_LIFETIME < REFRESH_TOKEN_LIFETIME, have expired too, so
    authentication no longer needs the revocation mark."""
    now = timezone.now()
    with transaction.atomic():
        revoked, _ = RevokedAccessToken.objects.filter(expires_at__lt=now).delete()
        live = OutstandingToken.objects.filter(jti=OuterRef("current_jti"), expires_at__gte=now)
        # Minted in the same transaction as their outstanding row, so a family without a live
        # one is dead; the age floor keeps any family still inside its first lifetime.
        born_before = now - settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"]
        families, _ = TokenFamily.objects.filter(~Exists(live), created_at__lt=born_before).delete()
        outstanding = OutstandingToken.objects.filter(expires_at__lt=now)
        blacklisted, _ = BlacklistedToken.objects.filter(token__in=outstanding).delete()
        refresh, _ = outstanding.delete()
    return {
        "revoked_access_tokens": revoked,
        "token_families": families,
        "outstanding_refresh_tokens": refresh,
        "blacklisted_refresh_tokens": blacklisted,
    }


def is_access_revoked(jti) -> bool:
    return isinstance(jti, str) and RevokedAccessToken.objects.filter(jti=jti).exists()


def token_is_live(claims: dict) -> bool:
    """For the per-account rate limit (raptorflow.hooks.token_is_live): whether a token
    whose signature and expiry already checked out still works — a blacklisted refresh
    token first, then the membership, the valid-after times, the family and a revoked
    access jti (one query)."""
    jti = claims.get("jti")
    if not isinstance(jti, str):
        return False
    token_type = claims.get("token_type")
    if token_type != "access" and (token_type != "refresh" or BlacklistedToken.objects.filter(token__jti=jti).exists()):
        return False
    try:
        membership_of(claims)
    except AuthenticationFailed:
        return False
    return True


def _locked_family(refresh: RefreshToken) -> TokenFamily | None:
    """The token's family, locked until the transaction ends: concurrent rotations (and
    reuses) of one sign-in run one after the other."""
    user_id = refresh.get(settings.SIMPLE_JWT["USER_ID_CLAIM"])
    family_id = refresh.get(FAMILY_CLAIM)
    try:
        user_id = uuid.UUID(str(user_id))
        family_id = uuid.UUID(str(family_id)) if family_id is not None else None
    except ValueError:
        return None
    if family_id is not None:
        return TokenFamily.objects.select_for_update().filter(pk=family_id, user_id=user_id).first()
    # Issued before token families existed: adopted into a new one, under the lock of its
    # own outstanding row.
    outstanding = OutstandingToken.objects.select_for_update().filter(jti=refresh["jti"]).first()
    if outstanding is None or BlacklistedToken.objects.filter(token=outstanding).exists():
        return None
    family = TokenFamily.objects.create(user_id=user_id, current_jti=refresh["jti"])
    refresh[FAMILY_CLAIM] = str(family.pk)
    return family


def _rotated_within_grace(jti: str) -> bool:
    rotated_at = BlacklistedToken.objects.filter(token__jti=jti).values_list("blacklisted_at", flat=True).first()
    grace = timedelta(seconds=settings.REFRESH_REUSE_GRACE_SECONDS)
    return rotated_at is not None and timezone.now() - rotated_at <= grace


def _blacklist_once(jti: str) -> None:
    """Blacklists the token being rotated. The blacklist's unique token column is the
    backstop of the family lock: a logout blacklisting it meanwhile makes this fail."""
    outstanding = OutstandingToken.objects.filter(jti=jti).first()
    if outstanding is None:
        raise _invalid_refresh()
    try:
        with transaction.atomic():
            BlacklistedToken.objects.create(token=outstanding)
    except IntegrityError:
        raise _invalid_refresh() from None


def _revoke_family(family: TokenFamily, *, organization_id) -> None:
    """Every token of the sign-in stops working: its current refresh token is blacklisted
    and the family marked revoked, which authentication checks for its access tokens."""
    family.revoked_at = timezone.now()
    family.save(update_fields=["revoked_at"])
    outstanding = OutstandingToken.objects.filter(jti=family.current_jti).first()
    if outstanding is not None:
        BlacklistedToken.objects.get_or_create(token=outstanding)
    try:
        organization_id = uuid.UUID(str(organization_id))
    except ValueError:
        organization_id = None
    audit.record(
        "auth.refresh_token_reuse",
        actor=family.user,
        organization=organization_id,
        target=family.user,
        family=str(family.pk),
    )


def _reissue(refresh: RefreshToken, *, not_before: datetime | None) -> None:
    """A new jti, issued now — or at `not_before`, when the valid-after time of the user
    or membership is still ahead (within the second of a change)."""
    issued = timezone.now()
    if not_before is not None and not_before > issued:
        issued = not_before
    refresh.current_time = issued
    refresh.set_jti()
    refresh.set_iat(at_time=issued)
    refresh.set_exp(from_time=issued)


def _outstand(refresh: RefreshToken, *, user_id) -> None:
    # The token itself is not kept: neither the database nor the admin ever holds a usable
    # refresh token. The jti identifies it for the blacklist.
    OutstandingToken.objects.create(
        user_id=user_id,
        jti=refresh["jti"],
        token="",
        created_at=refresh.current_time,
        expires_at=datetime_from_epoch(refresh["exp"]),
    )


def _pair(refresh: RefreshToken) -> dict:
    access = refresh.access_token
    access.set_iat(at_time=refresh.current_time)
    return {
        "access": str(access),
        "refresh": str(refresh),
        "token_type": "Bearer",
        "expires_in": int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()),
    }


def _invalid_refresh() -> AuthenticationFailed:
    return AuthenticationFailed("Refresh token is invalid, expired or revoked.", code="token_not_valid")


def _reused() -> AuthenticationFailed:
    return AuthenticationFailed(
        "This refresh token was already used; sign in again if this was not another tab.",
        code="refresh_token_reused",
    )
