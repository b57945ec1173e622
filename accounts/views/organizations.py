"""Organizations (teams): the caller's organizations, the current one, switching, members
and roles, invitations and Google Workspace domain claims (the caller's data export is
conversations/export.py).

Thin views: validate, call a service or selector, serialize. Scoping comes from
TenantAPIView (org-level rows through `.for_org`, conversations through `.visible_to`);
the role rules of writes live in accounts.services, so a member asking for a manager's action
gets a 403 there and anything of another organization is a 404 here; reads only managers may
do declare accounts.permissions.ManagersOnlyToRead.
"""

import django_filters
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from accounts import selectors, services
from accounts.models import DomainClaim, Invitation, InvitationStatus, Membership
from accounts.permissions import ManagersOnlyToRead
from accounts.serializers import (
    DomainClaimInputSerializer,
    DomainClaimSerializer,
    InvitationCreateInputSerializer,
    InvitationSerializer,
    MemberRoleInputSerializer,
    MemberSerializer,
    MyOrganizationSerializer,
    OrganizationCreateInputSerializer,
    OrganizationUpdateInputSerializer,
    SwitchOrganizationInputSerializer,
    TokenResponseSerializer,
    token_response,
)
from accounts.tokens import mint_tokens
from raptorflow import audit
from raptorflow.api import TenantAPIView, validated
from raptorflow.openapi import ErrorResponseSerializer, error_responses
from raptorflow.pagination import paginator_with_ordering

TAGS = ["organizations"]


def _as_mine(user, organization) -> dict:
    """The organization with the caller's role, read back through the same selector as
    the list so both answer the same shape."""
    return MyOrganizationSerializer(selectors.organizations_of_user(user).get(pk=organization.pk)).data


# --- the caller's organizations ---------------------------------------------------------


class OrganizationListCreateView(TenantAPIView):
    serializer_class = MyOrganizationSerializer
    filter_backends: list = []
    # Oldest membership first; the id breaks ties.
    pagination_class = paginator_with_ordering("joined_at", "id")

    @extend_schema(
        operation_id="organizations_list",
        responses={200: MyOrganizationSerializer(many=True)},
        tags=TAGS,
        description="Every organization the caller belongs to, each with the caller's role.",
    )
    def get(self, request):
        # The person's own memberships, across organizations: not scoped to the current one.
        page = self.paginate_queryset(selectors.organizations_of_user(request.user))
        return self.get_paginated_response(MyOrganizationSerializer(page, many=True).data)

    @extend_schema(
        operation_id="organizations_create",
        request=OrganizationCreateInputSerializer,
        responses={
            201: MyOrganizationSerializer,
            402: OpenApiResponse(
                ErrorResponseSerializer, description="`free_organization_limit`: the caller owns `limit` free ones."
            ),
        },
        tags=TAGS,
        description=(
            "Creates an organization owned by the caller. Switch to it to work inside it. 402 "
            "`free_organization_limit` (with `limit`) once the caller owns FREE_ORGANIZATIONS_PER_USER "
            "organizations on the free plan, their personal one included."
        ),
    )
    def post(self, request):
        data = validated(OrganizationCreateInputSerializer, request.data)
        organization = services.organization_create_for(name=data["name"], owner=request.user)
        return Response(_as_mine(request.user, organization), status=status.HTTP_201_CREATED)


class CurrentOrganizationView(TenantAPIView):
    serializer_class = MyOrganizationSerializer

    @extend_schema(
        operation_id="organizations_current_retrieve",
        responses={200: MyOrganizationSerializer},
        tags=TAGS,
        description="The organization of the access token, with the caller's role.",
    )
    def get(self, request):
        return Response(_as_mine(request.user, self.organization))

    @extend_schema(
        operation_id="organizations_current_update",
        request=OrganizationUpdateInputSerializer,
        responses={200: MyOrganizationSerializer, **error_responses(403)},
        tags=TAGS,
        description="Renames the organization and/or replaces its settings (owners and admins).",
    )
    def patch(self, request):
        data = validated(OrganizationUpdateInputSerializer, request.data)
        organization = services.organization_update(actor=self.caller.membership, **data)
        return Response(_as_mine(request.user, organization))

    @extend_schema(
        operation_id="organizations_current_destroy",
        responses={204: None, **error_responses(403, 409)},
        tags=TAGS,
        description=(
            "Deletes the organization (owners only) with all its conversations, messages, embeddings, "
            "invitations and memberships, after cancelling its subscription. The audit trail stays. "
            "Members whose default it was land in another of their organizations at their next sign-in."
        ),
    )
    def delete(self, request):
        services.organization_delete(actor=self.caller.membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SwitchOrganizationView(TenantAPIView):
    serializer_class = TokenResponseSerializer

    @extend_schema(
        operation_id="auth_switch_organization",
        request=SwitchOrganizationInputSerializer,
        responses={200: TokenResponseSerializer, **error_responses(404)},
        tags=["auth"],
        description=(
            "New tokens for another organization the caller belongs to (404 otherwise); it also "
            "becomes the organization a fresh sign-in lands in."
        ),
    )
    def post(self, request):
        data = validated(SwitchOrganizationInputSerializer, request.data)
        membership = services.organization_switch(user=request.user, organization_id=data["organization_id"])
        organization = membership.organization
        audit.record("auth.switch_organization", actor=request.user, organization=organization)
        tokens = mint_tokens(request.user, organization)
        return Response(token_response(tokens, user=request.user, organization=organization, role=membership.role))


# --- members ---------------------------------------------------------------------------


class MemberListView(TenantAPIView):
    model = Membership
    serializer_class = MemberSerializer
    filter_backends: list = []
    pagination_class = paginator_with_ordering("created_at", "id")

    @extend_schema(
        operation_id="organizations_members_list",
        responses={200: MemberSerializer(many=True)},
        tags=TAGS,
        description="The members of the current organization, oldest first.",
    )
    def get(self, request):
        page = self.paginate_queryset(selectors.members(self.get_queryset()))
        return self.get_paginated_response(MemberSerializer(page, many=True).data)


class MemberDetailView(TenantAPIView):
    model = Membership
    serializer_class = MemberSerializer
    filter_backends: list = []
    lookup_field = lookup_url_kwarg = "user_id"

    @extend_schema(
        operation_id="organizations_members_update",
        request=MemberRoleInputSerializer,
        responses={200: MemberSerializer, **error_responses(403, 409)},
        tags=TAGS,
        description=(
            "Changes a member's role. Owners and admins manage members; only owners grant, change or "
            "remove the owner role; the last owner cannot be demoted (409)."
        ),
    )
    def patch(self, request, user_id):
        target = self.get_object()
        data = validated(MemberRoleInputSerializer, request.data)
        membership = services.membership_change_role(actor=self.caller.membership, target=target, role=data["role"])
        return Response(MemberSerializer(membership).data)

    @extend_schema(
        operation_id="organizations_members_destroy",
        responses={204: None, **error_responses(403, 409)},
        tags=TAGS,
        description=(
            "Removes a member (owners and admins; only owners remove owners), or leaves the organization "
            "when it is the caller's own user id. The last owner can neither leave nor be removed (409). "
            "The member's tokens for this organization stop working at once."
        ),
    )
    def delete(self, request, user_id):
        services.membership_remove(actor=self.caller.membership, target=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- invitations -----------------------------------------------------------------------


class InvitationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=InvitationStatus.choices, help_text="Only invitations in this state.")

    class Meta:
        model = Invitation
        fields = ["status"]


class InvitationListCreateView(TenantAPIView):
    model = Invitation
    serializer_class = InvitationSerializer
    permission_classes = [IsAuthenticated, ManagersOnlyToRead]
    filterset_class = InvitationFilter
    pagination_class = paginator_with_ordering("-created_at", "-id")

    def filter_scoped(self, queryset):
        return selectors.invitations_with_status(queryset)

    @extend_schema(
        operation_id="organizations_invitations_list",
        responses={200: InvitationSerializer(many=True), **error_responses(403)},
        tags=TAGS,
        description="The current organization's invitations, newest first (owners and admins).",
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(InvitationSerializer(page, many=True).data)

    @extend_schema(
        operation_id="organizations_invitations_create",
        request=InvitationCreateInputSerializer,
        responses={201: InvitationSerializer, **error_responses(403, 409)},
        tags=TAGS,
        description=(
            "Invites an email address (owners and admins; only owners invite owners) and emails it a "
            "single-use link that expires after INVITATION_TTL_DAYS (7 by default). 409 when the person "
            "is already a member or already has a pending invitation."
        ),
    )
    def post(self, request):
        data = validated(InvitationCreateInputSerializer, request.data)
        invitation = services.invitation_create(actor=self.caller.membership, **data)
        return Response(
            InvitationSerializer(self.get_queryset().get(pk=invitation.pk)).data, status=status.HTTP_201_CREATED
        )


class InvitationDetailView(TenantAPIView):
    model = Invitation
    filter_backends: list = []

    @extend_schema(
        operation_id="organizations_invitations_destroy",
        responses={204: None, **error_responses(403, 409)},
        tags=TAGS,
        description="Revokes an invitation (owners and admins); its link stops working. 409 once accepted.",
    )
    def delete(self, request, id):
        services.invitation_revoke(actor=self.caller.membership, invitation=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationAcceptView(TenantAPIView):
    serializer_class = MyOrganizationSerializer

    @extend_schema(
        operation_id="invitations_accept",
        request=None,
        responses={201: MyOrganizationSerializer, 200: MyOrganizationSerializer, **error_responses(409)},
        tags=TAGS,
        parameters=[OpenApiParameter("token", str, OpenApiParameter.PATH, description="The token from the email.")],
        description=(
            "Joins the invitation's organization. The signed-in user's email must be the invited one "
            "(case-insensitive); otherwise, and for unknown or revoked tokens, 404. 409 when expired, "
            "already used, or when Google has not verified the account's email; 200 when this user already "
            "accepted it. Switch organization to work inside it."
        ),
    )
    def post(self, request, token):
        membership, created = services.invitation_accept(user=request.user, token=token)
        return Response(
            _as_mine(request.user, membership.organization),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


# --- Google Workspace domain claims -----------------------------------------------------


class DomainClaimListCreateView(TenantAPIView):
    model = DomainClaim
    serializer_class = DomainClaimSerializer
    permission_classes = [IsAuthenticated, ManagersOnlyToRead]
    filter_backends: list = []
    pagination_class = paginator_with_ordering("created_at", "id")

    @extend_schema(
        operation_id="organizations_domains_list",
        responses={200: DomainClaimSerializer(many=True), **error_responses(403)},
        tags=TAGS,
        description="The current organization's Google Workspace domain claims (owners and admins).",
    )
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(DomainClaimSerializer(page, many=True).data)

    @extend_schema(
        operation_id="organizations_domains_create",
        request=DomainClaimInputSerializer,
        responses={201: DomainClaimSerializer, **error_responses(403, 409)},
        tags=TAGS,
        description=(
            "Claims a Google Workspace domain (owners and admins). Once an operator approves it, Google "
            "sign-ins with a verified email of that Workspace join as members. A domain belongs to one "
            "organization (409 when already claimed); consumer domains such as gmail.com are refused."
        ),
    )
    def post(self, request):
        data = validated(DomainClaimInputSerializer, request.data)
        claim = services.domain_claim_create(actor=self.caller.membership, domain=data["domain"])
        return Response(DomainClaimSerializer(claim).data, status=status.HTTP_201_CREATED)


class DomainClaimDetailView(TenantAPIView):
    model = DomainClaim
    filter_backends: list = []

    @extend_schema(
        operation_id="organizations_domains_destroy",
        responses={204: None, **error_responses(403)},
        tags=TAGS,
        description="Withdraws a domain claim (owners and admins); sign-ins from it stop joining.",
    )
    def delete(self, request, id):
        services.domain_claim_delete(actor=self.caller.membership, claim=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
