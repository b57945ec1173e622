"""Endpoints of the rag app: organization provider keys and the reply endpoint."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from accounts.permissions import ManagersOnlyToRead
from conversations.models import Conversation
from conversations.serializers import IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_SCHEMA, idempotency_key_from
from rag import chat_providers, replies, selectors, services, streaming
from rag.models import ChatProviderName, ProviderKey
from rag.serializers import (
    REPLY_EVENT_SERIALIZERS,
    ProviderKeyInputSerializer,
    ProviderKeySerializer,
    ReplyInputSerializer,
    ReplySerializer,
    reply_body,
)
from raptorflow.api import TenantAPIView, validated
from raptorflow.openapi import error_responses
from raptorflow.pagination import paginator_with_ordering

PROVIDER_KEY_TAGS = ["organizations"]
PROVIDER_PARAMETER = OpenApiParameter(
    "provider", OpenApiTypes.STR, OpenApiParameter.PATH, enum=[p.value for p in ChatProviderName]
)


class ProviderKeyListView(TenantAPIView):
    """The organization's own chat provider keys (owners and admins). Keys are write-only:
    only the provider and the last four characters are ever shown."""

    model = ProviderKey
    serializer_class = ProviderKeySerializer
    permission_classes = [IsAuthenticated, ManagersOnlyToRead]
    pagination_class = paginator_with_ordering("provider")

    @extend_schema(
        operation_id="provider_keys_list",
        tags=PROVIDER_KEY_TAGS,
        responses={200: ProviderKeySerializer(many=True), **error_responses(403)},
    )
    def get(self, request):
        page = self.paginate_queryset(selectors.provider_key_list(organization=self.organization))
        return self.get_paginated_response(ProviderKeySerializer(page, many=True).data)


class ProviderKeyDetailView(TenantAPIView):
    """Sets (PUT {api_key}: 201 new, 200 replaced) or deletes one provider's key of the
    organization (owners and admins). The key is encrypted at rest and never returned."""

    model = ProviderKey
    serializer_class = ProviderKeySerializer
    lookup_field = "provider"
    lookup_url_kwarg = "provider"

    @extend_schema(
        operation_id="provider_keys_set",
        tags=PROVIDER_KEY_TAGS,
        parameters=[PROVIDER_PARAMETER],
        request=ProviderKeyInputSerializer,
        responses={200: ProviderKeySerializer, 201: ProviderKeySerializer, **error_responses(403)},
    )
    def put(self, request, provider: str):
        data = validated(ProviderKeyInputSerializer, request.data)
        stored, created = services.provider_key_set(
            actor=self.caller.membership, provider=provider, api_key=data["api_key"]
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(ProviderKeySerializer(stored).data, status=code)

    @extend_schema(
        operation_id="provider_keys_delete",
        tags=PROVIDER_KEY_TAGS,
        parameters=[PROVIDER_PARAMETER],
        responses={204: None, **error_responses(403)},
    )
    def delete(self, request, provider: str):
        services.provider_key_delete(actor=self.caller.membership, provider_key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


SSE_DESCRIPTION = (
    "Generates the assistant's reply with the conversation's agent prompt and RAG context. "
    "The user message is stored first (kept even when no provider is configured (503) or the "
    "providers fail (503/502)); a request past the plan's messages or reply tokens is a 402 that "
    "stores nothing; 409 on an archived conversation. "
    "With `stream: true` the answer is `text/event-stream`: `context` {user_message, context}, "
    "then `delta` {text} events, then `done` {message, usage} or `error` {code, message, "
    "partial_message} (a partial reply is stored with generation.status = \"incomplete\"). "
    "A retry with the same Idempotency-Key and body (`stream` aside) returns the first result (200) "
    "and creates nothing — a partial reply still marked incomplete; the same key with another body "
    "is 409 `idempotency_key_reused`, and while the key's first request is still being answered "
    "409 `in_progress`."
)


class ReplyView(TenantAPIView):
    """The assistant's reply to a user message, with its RAG context (see SSE_DESCRIPTION)."""

    model = Conversation
    serializer_class = ReplySerializer

    @extend_schema(
        operation_id="conversations_reply",
        request=ReplyInputSerializer,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_KEY_HEADER,
                IDEMPOTENCY_KEY_SCHEMA,
                OpenApiParameter.HEADER,
                description="Up to 255 characters. A retry with the same key and body returns the first "
                "reply and creates nothing new; another body under the same key is a 409.",
            )
        ],
        responses={
            (201, "application/json"): ReplySerializer,
            (200, "application/json"): ReplySerializer,
            (200, "text/event-stream"): OpenApiResponse(
                response=PolymorphicProxySerializer(
                    component_name="ReplyEvent",
                    serializers=REPLY_EVENT_SERIALIZERS,
                    resource_type_field_name=None,
                ),
                description="Server-sent events, each `event: <event>` and `data: <data as JSON>` "
                "(and `id: <id>` on a resumable stream): context, delta…, then done or error.",
            ),
            **error_responses(402, 409, 502, 503),
        },
        tags=["conversations"],
        description=SSE_DESCRIPTION,
    )
    def post(self, request, id):
        conversation = self.get_object()
        idempotency_key = idempotency_key_from(request)
        data = validated(ReplyInputSerializer, request.data)
        prepared = replies.reply_prepare(
            user=request.user,
            organization=self.organization,
            conversation=conversation,
            content=data.get("content"),
            message_id=data.get("message_id"),
            idempotency_key=idempotency_key,
        )
        if data["stream"]:
            return self._stream(prepared)
        if prepared.existing_reply is not None:
            body = reply_body(
                user_message=prepared.user_message, message=prepared.existing_reply, context=prepared.context
            )
            return Response(body, status=status.HTTP_200_OK)
        try:
            reply = chat_providers.complete(prepared.providers, prepared.augmented.chat_messages())
            message = replies.reply_store(
                prepared=prepared,
                text=reply.text,
                provider=reply.provider,
                model=reply.model,
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
            )
        finally:
            prepared.release()
        body = reply_body(user_message=prepared.user_message, message=message, context=prepared.context)
        return Response(body, status=status.HTTP_201_CREATED)

    def _stream(self, prepared) -> streaming.EventStreamResponse:
        if prepared.existing_reply is not None:
            events = streaming.replay_events(prepared)
        else:
            stream = chat_providers.ReplyStream(prepared.providers, prepared.augmented.chat_messages())
            # Until the first delta, a failing provider hands over to the next, and when all
            # fail the client gets a plain 503/502 instead of a stream that starts and errs.
            try:
                stream.start()
            except BaseException:
                prepared.release()
                raise
            events = streaming.reply_events(prepared, stream)
        return streaming.EventStreamResponse(events, on_close=prepared.release)
