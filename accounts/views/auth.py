"""Sign-in and token endpoints: Google (redirect and ID-token flows), me, logout,
verify-token and refresh."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import google, selectors, services
from accounts.authentication import Caller
from accounts.serializers import (
    GoogleIdTokenInputSerializer,
    GoogleLoginOutputSerializer,
    MeSerializer,
    OrganizationSerializer,
    RefreshInputSerializer,
    TokenPairSerializer,
    TokenResponseSerializer,
    UserSerializer,
    VerifyTokenInputSerializer,
    VerifyTokenOutputSerializer,
    token_response,
)
from accounts.tokens import membership_of, mint_tokens, parse_access, parse_refresh, revoke_access, rotate_refresh
from raptorflow import audit
from raptorflow.api import KnownQueryParametersOnly, TenantAPIView, validated
from raptorflow.errors import DomainError
from raptorflow.openapi import error_responses

AUTH_TAG = ["auth"]


class PublicAPIView(KnownQueryParametersOnly, APIView):
    """Endpoints reachable without an access token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request):
        # Without an authenticator DRF would turn AuthenticationFailed into a 403.
        return 'Bearer realm="api"'


def _signed_in(request, user, *, method: str, created: bool) -> dict:
    organization = services.landing_organization(user)
    membership = selectors.active_membership(user.id, organization.id)
    audit.record("auth.sign_in", actor=user, organization=organization, method=method, created=created)
    return token_response(mint_tokens(user, organization), user=user, organization=organization, role=membership.role)


class GoogleLoginView(PublicAPIView):
    @extend_schema(
        operation_id="auth_google_login",
        request=None,
        responses={200: GoogleLoginOutputSerializer, **error_responses(503)},
        tags=AUTH_TAG,
        description="Starts Google sign-in: the URL to send the browser to, with state and PKCE.",
    )
    def post(self, request):
        url, state = google.authorization_start(request)
        return Response({"authorization_url": url, "state": state})

    @extend_schema(
        operation_id="auth_google_login_get",
        responses={200: GoogleLoginOutputSerializer, **error_responses(503)},
        tags=AUTH_TAG,
        description="Same as POST.",
    )
    def get(self, request):
        return self.post(request)


class GoogleCallbackView(PublicAPIView):
    # Google's redirect adds parameters of its own (scope, authuser, prompt, hd, error, ...).
    refuse_unknown_query_parameters = False

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "code", {"type": "string", "minLength": 1}, required=True, description="Google's authorization code."
            ),
            OpenApiParameter(
                "state", {"type": "string", "minLength": 1}, required=True, description="The state from google/login."
            ),
        ],
        responses={200: TokenResponseSerializer, **error_responses(401, 409, 503)},
        tags=AUTH_TAG,
        description="Completes Google sign-in and answers JSON with tokens (never a redirect).",
    )
    def get(self, request):
        error = request.query_params.get("error")
        if error:
            raise DomainError(f"Google sign-in was not completed: {error}.", code="google_denied")
        params = request.query_params
        missing = {name: ["This parameter is required."] for name in ("code", "state") if not params.get(name)}
        if missing:
            raise serializers.ValidationError(missing)
        identity = google.identity_from_code(
            request, code=request.query_params["code"], state=request.query_params["state"]
        )
        user, created = google.user_for_identity(identity)
        return Response(_signed_in(request, user, method="google_code", created=created))


class GoogleIdTokenView(PublicAPIView):
    @extend_schema(
        request=GoogleIdTokenInputSerializer,
        responses={200: TokenResponseSerializer, **error_responses(401, 409, 503)},
        tags=AUTH_TAG,
        description="Signs in with a Google ID token (e.g. from @react-oauth/google).",
    )
    def post(self, request):
        data = validated(GoogleIdTokenInputSerializer, request.data)
        identity = google.identity_from_id_token(request, id_token=data["id_token"])
        user, created = google.user_for_identity(identity)
        return Response(_signed_in(request, user, method="google_id_token", created=created))


class MeView(TenantAPIView):
    @extend_schema(responses={200: MeSerializer}, tags=AUTH_TAG)
    def get(self, request):
        caller: Caller = request.auth
        return Response(
            {
                "user": UserSerializer(request.user).data,
                "organization": OrganizationSerializer(caller.organization).data,
                "role": caller.role,
            }
        )

    @extend_schema(
        operation_id="auth_me_destroy",
        responses={204: None, **error_responses(409)},
        tags=AUTH_TAG,
        description=(
            "Deletes the caller's account: organizations where nobody else is a member (the personal one, "
            "usually) are deleted with their data, the caller leaves the others, and their own conversations "
            "everywhere are deleted. 409 `last_owner` (listing `organizations`) while the caller is the last "
            "owner of an organization with other members: make someone else owner first. Export first "
            "(GET /api/auth/me/export) to keep a copy."
        ),
    )
    def delete(self, request):
        services.account_delete(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutView(TenantAPIView):
    @extend_schema(request=RefreshInputSerializer, responses={204: None}, tags=AUTH_TAG)
    def post(self, request):
        data = validated(RefreshInputSerializer, request.data)
        refresh = parse_refresh(data["refresh"])
        if str(refresh.get("user_id")) != str(request.user.pk):
            raise AuthenticationFailed("This refresh token belongs to another user.", code="token_not_valid")
        refresh.blacklist()
        revoke_access(request.auth.token)
        audit.record("auth.sign_out", actor=request.user, organization=request.auth.organization)
        return Response(status=status.HTTP_204_NO_CONTENT)


class VerifyTokenView(PublicAPIView):
    @extend_schema(
        request=VerifyTokenInputSerializer,
        responses={200: VerifyTokenOutputSerializer, **error_responses(401)},
        tags=AUTH_TAG,
        description="Checks an access token: 200 with its user and expiry, or 401.",
    )
    def post(self, request):
        data = validated(VerifyTokenInputSerializer, request.data)
        token = parse_access(data["token"])
        membership_of(token)
        return Response({"valid": True, "user_id": token["user_id"], "exp": token["exp"]})


class RefreshView(PublicAPIView):
    @extend_schema(
        request=RefreshInputSerializer,
        responses={200: TokenPairSerializer, **error_responses(401)},
        tags=AUTH_TAG,
        description=(
            "A new access token and a rotated refresh token; the old refresh token stops working. Of concurrent "
            "refreshes with one token exactly one succeeds; the others, and any later use of a rotated-out token, "
            "get 401 `refresh_token_reused`. Presented more than REFRESH_REUSE_GRACE_SECONDS after its rotation, "
            "a rotated-out token also revokes every token of its sign-in."
        ),
    )
    def post(self, request):
        data = validated(RefreshInputSerializer, request.data)
        return Response(rotate_refresh(data["refresh"]))
