"""Authentication of every API request.

The access token names a user and an organization. Both are re-checked on every request
against the database — the user must be active and still a member — so deactivation and
removal take effect immediately rather than when the token expires.
"""

import uuid
from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated

from accounts.models import Membership, Organization
from accounts.selectors import active_memberships
from accounts.tokens import FAMILY_CLAIM, ORG_CLAIM, is_access_revoked, parse_access
from raptorflow.throttling import first_counting_user_hit


@dataclass(frozen=True)
class Caller:
    """What a request acts as: the token, the organization it names and the role there."""

    token: object
    organization: Organization
    membership: Membership

    @property
    def role(self) -> str:
        return self.membership.role


class TenantJWTAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != self.keyword:
            # `Token <jwt>`, `JWT <jwt>` or a bare token: say which scheme we want rather than
            # the bare "not provided".
            raise NotAuthenticated("The Authorization header must use the Bearer scheme: 'Bearer <access token>'.")
        if len(header) != 2:
            raise AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError:
            raise AuthenticationFailed("Authorization header is not valid.") from None
        token = parse_access(raw)
        user_id, org_id = token.get("user_id"), token.get(ORG_CLAIM)
        try:
            user_id, org_id = uuid.UUID(str(user_id)), uuid.UUID(str(org_id))
        except ValueError:
            raise AuthenticationFailed("Access token is missing its user or organization.") from None
        # One statement: membership, user active, valid-after times, sign-in family, the
        # revoked access jti (a logout) — and, on the database cache, the per-user rate
        # limit's count of this request, taken only if all of those hold.
        memberships = active_memberships(
            user_id, org_id, issued_at=token.get("iat"), family_id=token.get(FAMILY_CLAIM), access_jti=token["jti"]
        )
        membership = first_counting_user_hit(request, user_id, memberships) if memberships is not None else None
        if membership is None:
            if is_access_revoked(token["jti"]):
                raise AuthenticationFailed("Access token has been revoked.", code="token_not_valid")
            raise AuthenticationFailed("This account or membership is no longer active.", code="user_inactive")
        return membership.user, Caller(token=token, organization=membership.organization, membership=membership)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class TenantJWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.TenantJWTAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
