"""The nine conversation endpoints (SPEC §4 "Conversations"). Thin: validate, call a
service or selector, serialize. Scoping comes from TenantAPIView: a conversation that is
not the caller's own is a 404 for every verb."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from conversations import export, selectors, services
from conversations.filters import ConversationFilter
from conversations.models import Conversation, Message
from conversations.serializers import (
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENCY_KEY_SCHEMA,
    ActiveBranchSerializer,
    ConversationCreateInputSerializer,
    ConversationSerializer,
    ConversationUpdateInputSerializer,
    MessageCreateInputSerializer,
    MessageRecentSerializer,
    MessageSerializer,
    TitleSearchQuerySerializer,
    idempotency_key_from,
)
from raptorflow.api import TenantAPIView, validated
from raptorflow.openapi import error_responses
from raptorflow.pagination import bounded_int_param, paginator_with_ordering

TAGS = ["conversations"]
RECENT_DEFAULT, RECENT_MAX = 10, 100

# Newest activity first; the id breaks ties between conversations active in the same instant.
ConversationPagination = paginator_with_ordering("-activity_at", "-id")
# The list's position is the newest activity, pinned ones moved ahead with ?pinned_first=true
# (conversations/filters.py annotates it).
ConversationListPagination = paginator_with_ordering("-list_position", "-id")
# Oldest first: sequence is unique within the one conversation being listed.
MessagePagination = paginator_with_ordering("sequence")


class ConversationListCreateView(TenantAPIView):
    model = Conversation
    serializer_class = ConversationSerializer
    filterset_class = ConversationFilter
    pagination_class = ConversationListPagination

    @extend_schema(
        operation_id="conversations_list",
        responses={200: ConversationSerializer(many=True)},
        tags=TAGS,
        description="The caller's conversations, newest activity first (pinned ones first with "
        "`pinned_first=true`); filter by status, agent_type, pinned and tag.",
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(ConversationSerializer(page, many=True).data)

    @extend_schema(
        operation_id="conversations_create",
        request=ConversationCreateInputSerializer,
        responses={201: ConversationSerializer},
        tags=TAGS,
    )
    def post(self, request):
        data = validated(ConversationCreateInputSerializer, request.data)
        conversation = services.conversation_create(organization=self.organization, owner=request.user, **data)
        return Response(ConversationSerializer(conversation).data, status=status.HTTP_201_CREATED)


class ConversationDetailView(TenantAPIView):
    model = Conversation
    serializer_class = ConversationSerializer
    filter_backends: list = []

    @extend_schema(operation_id="conversations_retrieve", responses={200: ConversationSerializer}, tags=TAGS)
    def get(self, request, id):
        return Response(ConversationSerializer(self.get_object()).data)

    @extend_schema(
        operation_id="conversations_update",
        request=ConversationUpdateInputSerializer,
        responses={200: ConversationSerializer},
        tags=TAGS,
        description="Changes title (then title_source is `user`, never overwritten), status, metadata "
        "(replaced whole), pinned and/or tags (replaced whole). Other fields are a 400.",
    )
    def patch(self, request, id):
        conversation = self.get_object()
        data = validated(ConversationUpdateInputSerializer, request.data)
        conversation = services.conversation_update(conversation=conversation, **data)
        return Response(ConversationSerializer(conversation).data)

    @extend_schema(operation_id="conversations_destroy", responses={204: None}, tags=TAGS)
    def delete(self, request, id):
        services.conversation_delete(conversation=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversationMessagesMixin:
    model = Message
    serializer_class = MessageSerializer
    filter_backends: list = []

    def get_conversation(self) -> Conversation:
        return self.get_scoped_or_404(Conversation, id=self.kwargs["id"])


class MessageListCreateView(ConversationMessagesMixin, TenantAPIView):
    pagination_class = MessagePagination

    @extend_schema(
        operation_id="conversations_messages_list",
        responses={200: MessageSerializer(many=True)},
        tags=TAGS,
        description="The conversation's active branch, root → leaf (oldest first), each message with its "
        "parent and siblings (`sibling_ids`, `sibling_index`, `sibling_count`) to switch between versions.",
    )
    def get(self, request, id):
        messages = selectors.message_list(self.get_queryset(), conversation=self.get_conversation())
        page = self.paginate_queryset(messages)
        return self.get_paginated_response(MessageSerializer(page, many=True).data)

    @extend_schema(
        operation_id="conversations_messages_create",
        request=MessageCreateInputSerializer,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_KEY_HEADER,
                IDEMPOTENCY_KEY_SCHEMA,
                OpenApiParameter.HEADER,
                description="Up to 255 characters. A retry with the same key returns the first message (200) "
                "and stores nothing new.",
            )
        ],
        responses={201: MessageSerializer, 200: MessageSerializer, **error_responses(402, 409)},
        tags=TAGS,
        description="Appends a message after the active branch's leaf (it becomes the leaf). 409 when the "
        "conversation is archived; 402 past the plan's quota.",
    )
    def post(self, request, id):
        idempotency_key = idempotency_key_from(request)
        data = validated(MessageCreateInputSerializer, request.data)
        # The scoped row is looked up and locked in one statement by the service: not the
        # caller's (or gone) is the same 404.
        conversation = self.scoped(Conversation).filter(id=id)
        message, created = services.message_create(conversation=conversation, idempotency_key=idempotency_key, **data)
        return Response(
            MessageSerializer(message).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class MessageRecentView(ConversationMessagesMixin, TenantAPIView):
    pagination_class = None

    @extend_schema(
        operation_id="conversations_messages_recent",
        parameters=[
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": RECENT_MAX},
                description=f"1..{RECENT_MAX}, default {RECENT_DEFAULT}.",
            )
        ],
        responses={200: MessageRecentSerializer},
        tags=TAGS,
        description="The newest N messages of the active branch, in chronological order.",
    )
    def get(self, request, id):
        limit = bounded_int_param(request, "limit", default=RECENT_DEFAULT, minimum=1, maximum=RECENT_MAX)
        messages = selectors.message_recent(self.get_queryset(), conversation=self.get_conversation(), limit=limit)
        return Response({"results": MessageSerializer(messages, many=True).data})


class MessageActivateView(ConversationMessagesMixin, TenantAPIView):
    pagination_class = None

    @extend_schema(
        operation_id="conversations_messages_activate",
        request=None,
        responses={200: ActiveBranchSerializer},
        tags=TAGS,
        description="Shows the branch through this message: its newest descendant becomes the active leaf. "
        "Answers with the branch now shown (its newest 100 messages).",
    )
    def post(self, request, id, message_id):
        conversation = self.get_conversation()
        message = self.get_scoped_or_404(Message, id=message_id, conversation=conversation)
        conversation = services.message_activate(conversation=conversation, message=message)
        messages = selectors.message_recent(self.get_queryset(), conversation=conversation, limit=RECENT_MAX)
        data = {"conversation_id": conversation.id, "active_leaf_id": conversation.active_leaf_id, "results": messages}
        return Response(ActiveBranchSerializer(data).data)


class ConversationTitleSearchView(TenantAPIView):
    model = Conversation
    serializer_class = ConversationSerializer
    pagination_class = ConversationPagination
    filter_backends: list = []

    @extend_schema(
        operation_id="conversations_search_by_title",
        parameters=[TitleSearchQuerySerializer],
        responses={200: ConversationSerializer(many=True)},
        tags=TAGS,
        description="The caller's conversations whose title contains `q` (case-insensitive), newest activity first.",
    )
    def get(self, request):
        query = validated(TitleSearchQuerySerializer, request.query_params)["q"]
        conversations = selectors.conversation_search_by_title(self.get_queryset(), query=query)
        page = self.paginate_queryset(conversations)
        return self.get_paginated_response(ConversationSerializer(page, many=True).data)


class AccountExportView(TenantAPIView):
    model = Conversation
    filter_backends: list = []

    def get_serializer_class(self):
        return export.account_export_serializer_class()

    @extend_schema(
        operation_id="auth_me_export",
        responses={200: export.account_export_serializer_class()},
        tags=["auth"],
        description=(
            "The caller's own conversations, each with all its messages, in the organization of the "
            "access token (`scope` says so); switch organization to export another one."
        ),
    )
    def get(self, request):
        data = export.account_export(
            user=request.user, organization=self.organization, conversations=self.get_queryset()
        )
        return Response(export.account_export_serializer_class()(data).data)
