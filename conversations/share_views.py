"""Share links (conversations/shares.py):

    POST   /api/conversations/{id}/shares              {scope, expires_at?} -> the share with its token
    GET    /api/conversations/{id}/shares              the conversation's shares, newest first
    DELETE /api/conversations/{id}/shares/{share_id}   revokes one
    GET    /api/shares/{token}                         the snapshot

The first three are the conversation owner's (a TenantAPIView: anyone else gets 404). The
last is public — the token is the credential — with an optional bearer token for
organization links; it is on the allow-list of tests/test_scoping_rules.py and limited per
client IP (raptorflow.throttling.ShareLinkIpThrottle).
"""

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import TenantJWTAuthentication
from conversations import shares
from conversations.models import Conversation, ConversationShare
from conversations.share_serializers import (
    CreatedShareSerializer,
    ShareCreateInputSerializer,
    SharedConversationSerializer,
    ShareSerializer,
)
from raptorflow.api import KnownQueryParametersOnly, TenantAPIView, validated
from raptorflow.openapi import error_responses
from raptorflow.pagination import paginator_with_ordering
from raptorflow.throttling import ShareLinkIpThrottle, UserRateThrottle

TAGS = ["shares"]


class ConversationShareListCreateView(TenantAPIView):
    model = ConversationShare
    serializer_class = ShareSerializer
    pagination_class = paginator_with_ordering("-created_at", "-id")
    filter_backends: list = []

    def get_conversation(self) -> Conversation:
        return self.get_scoped_or_404(Conversation, id=self.kwargs["id"])

    @extend_schema(
        operation_id="conversations_shares_list",
        responses={200: ShareSerializer(many=True)},
        tags=TAGS,
        description="The conversation's share links (active, revoked and expired), newest first. Tokens are "
        "never shown again.",
    )
    def get(self, request, id):
        page = self.paginate_queryset(shares.share_list(self.get_queryset(), conversation=self.get_conversation()))
        return self.get_paginated_response(ShareSerializer(page, many=True).data)

    @extend_schema(
        operation_id="conversations_shares_create",
        request=ShareCreateInputSerializer,
        responses={201: CreatedShareSerializer, **error_responses(403)},
        tags=TAGS,
        description="Freezes the conversation's active branch as it is now (title; role, content and time of each "
        "message) into a read-only snapshot and returns the link's token, shown this once. 403 "
        "`public_links_disabled` for a public link while the organization does not allow them "
        "(settings.public_share_links).",
    )
    def post(self, request, id):
        conversation = self.get_conversation()
        data = validated(ShareCreateInputSerializer, request.data)
        share, token = shares.share_create(
            conversation=conversation,
            organization=self.organization,
            scope=data["scope"],
            expires_at=data.get("expires_at"),
        )
        share.token = token
        share.url = request.build_absolute_uri(reverse("shared-conversation", kwargs={"token": token}))
        return Response(CreatedShareSerializer(share).data, status=status.HTTP_201_CREATED)


class ConversationShareDetailView(TenantAPIView):
    model = ConversationShare
    serializer_class = ShareSerializer
    filter_backends: list = []

    @extend_schema(
        operation_id="conversations_shares_revoke",
        responses={204: None},
        tags=TAGS,
        description="Revokes the link: from now on it answers 404. Revoking it again is a 204 too.",
    )
    def delete(self, request, id, share_id):
        share = self.get_scoped_or_404(ConversationShare, conversation_id=id, id=share_id)
        shares.share_revoke(share=share)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SharedConversationView(KnownQueryParametersOnly, APIView):
    """A share link's snapshot. Public links open for anyone; organization links for members
    of the conversation's organization (a bearer token of any of the member's organizations
    will do). Everything else — an unknown, revoked or expired token, an outsider, nobody
    signed in for an organization link — is the same 404."""

    authentication_classes = [TenantJWTAuthentication]
    permission_classes = [AllowAny]
    throttle_classes = [ShareLinkIpThrottle, UserRateThrottle]

    @extend_schema(
        operation_id="shares_retrieve",
        parameters=[OpenApiParameter("token", str, OpenApiParameter.PATH, description="The link's token.")],
        responses={200: SharedConversationSerializer},
        tags=TAGS,
        description="The snapshot a share link opens (titles, roles, contents and timestamps only). Each read "
        "counts a view. Limited per client IP.",
    )
    def get(self, request, token):
        # A bearer token is optional here: request.auth is the Caller when one was given.
        viewer = request.user if request.auth is not None else None
        share = shares.unscoped_share_for_viewer(token=token, viewer=viewer)
        return Response(SharedConversationSerializer(share).data)
