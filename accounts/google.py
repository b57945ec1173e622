"""Google sign-in: the authorization-code flow (with state and PKCE) and the ID-token flow
of @react-oauth/google, both through django-allauth's Google provider classes.

allauth does the OAuth and OpenID work (authorization URL, code exchange, ID-token
signature/audience/issuer/expiry checks against Google's keys); this module decides which
RaptorFlow user a Google identity is, and nothing here touches sessions or redirects.
"""

import logging
import secrets
from dataclasses import dataclass

import requests
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.models import SocialAccount, SocialApp
from allauth.socialaccount.providers.google.views import GoogleOAuth2Adapter
from allauth.socialaccount.providers.oauth2.client import OAuth2Client, OAuth2Error
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from rest_framework.exceptions import AuthenticationFailed, ValidationError

from accounts import services
from accounts.models import User
from raptorflow.errors import Conflict, NotConfigured, UpstreamUnavailable

logger = logging.getLogger(__name__)
PROVIDER_ID = "google"
_STATE_PREFIX = "google-oauth-state:"


@dataclass(frozen=True)
class GoogleIdentity:
    sub: str
    email: str
    email_verified: bool
    name: str
    picture: str
    hosted_domain: str | None
    claims: dict


def _provider(request):
    try:
        return get_adapter(request).get_provider(request, PROVIDER_ID)
    except SocialApp.DoesNotExist:
        raise NotConfigured(
            "Google sign-in is not configured on this server: set GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET."
        ) from None


def _client(request, provider) -> OAuth2Client:
    adapter = GoogleOAuth2Adapter(request)
    return OAuth2Client(
        request,
        provider.app.client_id,
        provider.app.secret,
        adapter.access_token_method,
        adapter.access_token_url,
        settings.GOOGLE_REDIRECT_URI,
        scope_delimiter=adapter.scope_delimiter,
        basic_auth=adapter.basic_auth,
    )


def authorization_start(request) -> tuple[str, str]:
    """The Google authorization URL and its state. The state and the PKCE verifier are
    kept server-side (shared cache), single-use, for GOOGLE_OAUTH_STATE_TTL seconds."""
    provider = _provider(request)
    pkce = provider.get_pkce_params()
    state = secrets.token_urlsafe(32)
    cache.set(_STATE_PREFIX + state, {"code_verifier": pkce["code_verifier"]}, timeout=settings.GOOGLE_OAUTH_STATE_TTL)
    client = _client(request, provider)
    client.state = state
    extra = provider.get_auth_params()
    extra.update({"code_challenge": pkce["code_challenge"], "code_challenge_method": pkce["code_challenge_method"]})
    url = client.get_redirect_url(GoogleOAuth2Adapter.authorize_url, provider.get_scope(), extra)
    return url, state


def _consume_state(state: str) -> dict:
    """Returns the stored PKCE data for `state` and forgets it; a second use, an unknown or
    an expired state is refused."""
    key = _STATE_PREFIX + state
    data = cache.get(key)
    # delete() reports whether the key was still there: of two concurrent callbacks with
    # the same state only one wins.
    if data is None or not cache.delete(key):
        raise ValidationError({"state": ["Unknown, expired or already used state; start the sign-in again."]})
    return data


def identity_from_code(request, *, code: str, state: str) -> GoogleIdentity:
    provider = _provider(request)
    pkce = _consume_state(state)
    adapter = GoogleOAuth2Adapter(request)
    client = _client(request, provider)
    try:
        token_data = client.get_access_token(code, pkce_code_verifier=pkce["code_verifier"])
    except OAuth2Error as exc:
        raise AuthenticationFailed("Google refused the authorization code.", code="google_code_rejected") from exc
    except requests.RequestException as exc:
        raise UpstreamUnavailable("Google's token endpoint could not be reached.", code="google_unavailable") from exc
    if "id_token" not in token_data:
        raise AuthenticationFailed("Google's answer carried no ID token.", code="google_code_rejected")
    # The ID token came straight from Google over TLS (OIDC Core §3.1.3.7): allauth then
    # checks audience, issuer and expiry without re-verifying the signature.
    adapter.did_fetch_access_token = True
    try:
        claims = adapter._decode_id_token(provider.app, token_data["id_token"])
    except OAuth2Error as exc:
        raise AuthenticationFailed("Google's ID token is not valid.", code="google_token_invalid") from exc
    return _identity(claims)


def identity_from_id_token(request, *, id_token: str) -> GoogleIdentity:
    """Verifies an ID token from the browser: signature against Google's keys, audience
    (our client id), issuer (either spelling Google uses) and expiry."""
    provider = _provider(request)
    try:
        login = provider.verify_token(request, {"id_token": id_token})
    except DjangoValidationError as exc:
        cause = exc.__cause__
        if isinstance(cause, requests.RequestException):
            raise UpstreamUnavailable("Google's signing keys could not be fetched.", code="google_unavailable") from exc
        raise AuthenticationFailed("The Google ID token is not valid.", code="google_token_invalid") from exc
    return _identity(login.account.extra_data)


def _identity(claims: dict) -> GoogleIdentity:
    if not claims.get("sub") or not claims.get("email"):
        raise AuthenticationFailed("Google did not share an email address.", code="google_token_invalid")
    return GoogleIdentity(
        sub=str(claims["sub"]),
        email=claims["email"].lower(),
        email_verified=bool(claims.get("email_verified") or claims.get("verified_email")),
        name=claims.get("name", ""),
        picture=claims.get("picture", ""),
        hosted_domain=claims.get("hd"),
        claims=claims,
    )


@transaction.atomic
def user_for_identity(identity: GoogleIdentity) -> tuple[User, bool]:
    """The RaptorFlow user of a Google identity, created on first sign-in.

    Keyed by Google's `sub`. An identity seen for the first time links to an existing user
    with the same email only when Google verified that email; otherwise it could take over
    someone else's account."""
    account = SocialAccount.objects.select_related("user").filter(provider=PROVIDER_ID, uid=identity.sub).first()
    created = False
    if account is not None:
        user = account.user
        account.extra_data = identity.claims
        account.save(update_fields=["extra_data", "last_login"])
    else:
        user = User.objects.filter(email__iexact=identity.email).first()
        if user is not None and not identity.email_verified:
            raise Conflict(
                "An account with this email already exists and Google has not verified this address.",
                code="email_unverified",
            )
        if user is None:
            user = services.user_create_with_personal_organization(
                email=identity.email, name=identity.name, avatar_url=identity.picture[:500]
            )
            created = True
        SocialAccount.objects.create(user=user, provider=PROVIDER_ID, uid=identity.sub, extra_data=identity.claims)
    if not user.is_active:
        raise AuthenticationFailed("This account is deactivated.", code="user_inactive")
    services.workspace_domain_join(
        user=user, email=identity.email, email_verified=identity.email_verified, hosted_domain=identity.hosted_domain
    )
    return user, created
