"""Endpoints of the rag app: organization provider keys, replies (to a new question, an
edited one, again) and the events and cancel of streamed replies."""

import itertools

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from accounts.permissions import ManagersOnlyToRead
from conversations import services as conversation_services
from conversations.models import Conversation, Message
from conversations.serializers import (
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENCY_KEY_SCHEMA,
    MessageSerializer,
    idempotency_key_from,
)
from rag import chat_providers, replies, reply_runner, selectors, services, streaming
from rag.models import ChatProviderName, ProviderKey
from rag.reply_events import InvalidEventId
from rag.serializers import (
    REPLY_EVENT_SERIALIZERS,
    EditInputSerializer,
    ProviderKeyInputSerializer,
    ProviderKeySerializer,
    RegenerateInputSerializer,
    ReplyInputSerializer,
    ReplySerializer,
    reply_body,
)
from raptorflow.api import TenantAPIView, validated
from raptorflow.errors import InvalidInput
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
    "Generates the assistant's reply with the conversation's agent prompt and RAG context (the question's "
    "own branch). The user message is stored first (kept even when no provider is configured (503) or the "
    "providers fail (503/502)); a request past the plan's messages or reply tokens is a 402 that "
    "stores nothing; 409 on an archived conversation. `message_id` of a question answered already adds "
    "another answer beside the earlier ones (see regenerate). "
    "With `stream: true` the answer is `text/event-stream` and the reply is generated apart from the "
    "request: the `X-Reply-Id` header and the first event's `reply_id` name it; every event has an `id:`; "
    "`context` {reply_id, user_message, context}, then `delta` {text} events, then `done` {message, usage} "
    "or `error` {code, message, partial_message} (a provider failing mid-reply: the partial reply is stored "
    "with generation.status = \"incomplete\"; `cancelled`: see …/replies/{reply_id}/cancel). A client that "
    "disconnects stops nothing: the reply is completed and stored, and GET "
    "…/replies/{reply_id}/events with Last-Event-ID resumes. Comment lines keep an idle stream open. "
    "A retry with the same Idempotency-Key and body (`stream` aside) returns the first result (200) "
    "and creates nothing — a partial reply still marked incomplete; while the first is being generated a "
    "streamed retry follows its events (a JSON retry gets 409 `in_progress`); the same key with another "
    "body is 409 `idempotency_key_reused`."
)


IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENCY_KEY_SCHEMA,
    OpenApiParameter.HEADER,
    description="Up to 255 characters. A retry with the same key and body returns the first "
    "reply and creates nothing new; another body under the same key is a 409.",
)
# Names a streamed reply, for GET …/replies/{reply_id}/events and …/cancel.
REPLY_ID_RESPONSE_HEADER = OpenApiParameter(
    streaming.REPLY_ID_HEADER,
    OpenApiTypes.UUID,
    OpenApiParameter.HEADER,
    response=[200],
    description="With stream: true, the reply's id (also `reply_id` in the first event's data).",
)
REPLY_RESPONSES = {
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
}


class AnsweringView(TenantAPIView):
    """Generates an answer prepared by rag.replies.reply_prepare, as JSON or as a stream."""

    model = Conversation
    serializer_class = ReplySerializer

    def prepare(self, request, conversation, *, stream: bool, **specific):
        """reply_prepare() for this caller, conversation and Idempotency-Key (with what the
        endpoint adds: the content, the message answered, edited or regenerated), or — for a
        stream retried under the key of a reply still being generated — the events of that
        reply to attach to."""
        kwargs = {
            "user": request.user,
            "organization": self.organization,
            "conversation": conversation,
            "idempotency_key": idempotency_key_from(request),
            **specific,
        }
        try:
            return replies.reply_prepare(**kwargs)
        except replies.ReplyInProgress as exc:
            reply_id = stream and replies.stream_in_progress(
                conversation=kwargs["conversation"],
                idempotency_key=kwargs["idempotency_key"],
                fingerprint=exc.prepared.fingerprint,
            )
            if not reply_id:
                raise
            return streaming.EventStreamResponse(streaming.follow(reply_id), reply_id=reply_id)

    def answer(self, prepared, *, stream: bool):
        if isinstance(prepared, streaming.EventStreamResponse):
            return prepared
        if stream:
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
            return streaming.EventStreamResponse(streaming.replay_events(prepared))
        try:
            reply_id = reply_runner.start(prepared)
        finally:
            # Held by the generator from now on (start() hands them over): this gives back
            # only what a failed start still holds.
            prepared.release()
        # Until the first delta a failing provider hands over to the next, and when all fail
        # the client gets a plain 503/502 instead of a stream that starts and errs.
        timeout = settings.PROVIDER_TIMEOUT_SECONDS * max(1, len(prepared.providers)) + 5
        streaming.raise_if_failed_before_first_delta(streaming.first_outcome(reply_id, timeout=timeout))
        return streaming.EventStreamResponse(streaming.follow(reply_id), reply_id=reply_id)


class ReplyView(AnsweringView):
    """The assistant's reply to a user message, with its RAG context (see SSE_DESCRIPTION)."""

    @extend_schema(
        operation_id="conversations_reply",
        request=ReplyInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER, REPLY_ID_RESPONSE_HEADER],
        responses={**REPLY_RESPONSES, **error_responses(402, 409, 502, 503)},
        tags=["conversations"],
        description=SSE_DESCRIPTION,
    )
    def post(self, request, id):
        conversation = self.get_object()
        data = validated(ReplyInputSerializer, request.data)
        prepared = self.prepare(
            request,
            conversation,
            stream=data["stream"],
            content=data.get("content"),
            message_id=data.get("message_id"),
            document_ids=data.get("document_ids"),
        )
        return self.answer(prepared, stream=data["stream"])


class MessageEditView(AnsweringView):
    @extend_schema(
        operation_id="conversations_messages_edit",
        request=EditInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER, REPLY_ID_RESPONSE_HEADER],
        responses={
            **REPLY_RESPONSES,
            (201, "application/json"): PolymorphicProxySerializer(
                component_name="EditResult",
                serializers=[MessageSerializer, ReplySerializer],
                resource_type_field_name=None,
            ),
            **error_responses(402, 409, 502, 503),
        },
        tags=["conversations"],
        description=(
            "A new version of a user message: a sibling with the new content (the same metadata), which "
            "becomes the active branch's leaf; the old version and its answers stay on their branch. Without "
            "`reply` the answer is the new message (201; 200 for an Idempotency-Key retry). With `reply: true` "
            "the assistant answers it as POST …/reply does (same JSON, or events with `stream: true`). "
            "400 for an assistant or system message."
        ),
    )
    def post(self, request, id, message_id):
        conversation = self.get_object()
        edited = self.get_scoped_or_404(Message, id=message_id, conversation=conversation)
        idempotency_key = idempotency_key_from(request)
        data = validated(EditInputSerializer, request.data)
        if not data["reply"]:
            message, created = conversation_services.message_edit(
                conversation=conversation,
                message=edited,
                content=data["content"],
                idempotency_key=idempotency_key,
                fingerprint=replies.edit_fingerprint(message_id=edited.id, content=data["content"], reply=False),
            )
            code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
            return Response(MessageSerializer(message).data, status=code)
        prepared = self.prepare(request, conversation, stream=data["stream"], content=data["content"], edit_of=edited)
        return self.answer(prepared, stream=data["stream"])


class MessageRegenerateView(AnsweringView):
    @extend_schema(
        operation_id="conversations_messages_regenerate",
        request=RegenerateInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER, REPLY_ID_RESPONSE_HEADER],
        responses={**REPLY_RESPONSES, **error_responses(402, 409, 502, 503)},
        tags=["conversations"],
        description=(
            "Another answer to the question this assistant message answered, from the same history: a "
            "sibling answer that becomes the active branch's leaf (the earlier answers stay, reachable "
            "through sibling_ids and POST …/activate). Same responses as POST …/reply; 400 for a message "
            "that is not an assistant's answer to a user message."
        ),
    )
    def post(self, request, id, message_id):
        conversation = self.get_object()
        data = validated(RegenerateInputSerializer, request.data)
        prepared = self.prepare(request, conversation, stream=data["stream"], regenerate_of=message_id)
        return self.answer(prepared, stream=data["stream"])


LAST_EVENT_ID_HEADER = "Last-Event-ID"
REPLY_ID_PARAMETER = OpenApiParameter("reply_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class ReplyEventsView(TenantAPIView):
    """Resumes (or attaches to) a streamed reply's events."""

    model = Conversation
    serializer_class = ReplySerializer

    @extend_schema(
        operation_id="conversations_replies_events",
        parameters=[
            REPLY_ID_PARAMETER,
            OpenApiParameter(
                LAST_EVENT_ID_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="The id of the last event received: the events after it are sent, then the new ones "
                "live. Without it, every event from the first.",
            ),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="Server-sent events (each with an `id:`): context, delta…, done | error.",
            ),
            **error_responses(404),
        },
        tags=["conversations"],
        description=(
            "The events of a streamed reply (its id is the `X-Reply-Id` header and the first event's `reply_id`), "
            "kept for REPLY_EVENTS_TTL_SECONDS (one hour) after the last one; the stream continues live until "
            "`done` or `error`. Only the conversation's owner may read them (404 otherwise, and for an expired "
            "reply)."
        ),
    )
    def get(self, request, id, reply_id):
        reply_id = reply_runner.require_reply(reply_id, conversation=self.get_object())
        after = request.headers.get(LAST_EVENT_ID_HEADER) or None
        events = streaming.follow(reply_id, after=after)
        try:
            first = next(events)
        except InvalidEventId:
            raise InvalidInput({LAST_EVENT_ID_HEADER: ["Not an event id of this reply."]}) from None
        except StopIteration:
            first = ""
        return streaming.EventStreamResponse(itertools.chain([first], events), reply_id=reply_id)


class ReplyCancelSerializer(serializers.Serializer):
    reply_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["cancelling"])


class ReplyCancelView(TenantAPIView):
    model = Conversation
    serializer_class = ReplyCancelSerializer

    @extend_schema(
        operation_id="conversations_replies_cancel",
        request=None,
        parameters=[REPLY_ID_PARAMETER],
        responses={202: ReplyCancelSerializer, **error_responses(404, 409)},
        tags=["conversations"],
        description=(
            "Stops a streamed reply at its next delta: what was sent so far is stored with generation.status "
            "`cancelled` and the stream ends with an `error` event of code `cancelled`. 409 `reply_finished` when "
            "it has ended already; 404 for anyone but the conversation's owner."
        ),
    )
    def post(self, request, id, reply_id):
        reply_id = reply_runner.require_reply(reply_id, conversation=self.get_object())
        reply_runner.cancel(reply_id)
        return Response({"reply_id": reply_id, "status": "cancelling"}, status=status.HTTP_202_ACCEPTED)
