"""PUT|DELETE /api/conversations/{id}/messages/{message_id}/feedback: the owner's rating of
an assistant message (conversations/feedback.py). Thin, like conversations/views.py; a
message that is not the caller's (or not in this conversation) is a 404."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from conversations import feedback
from conversations.models import Message
from conversations.serializers import FeedbackInputSerializer, MessageSerializer
from raptorflow.api import TenantAPIView, validated

TAGS = ["conversations"]


class MessageFeedbackView(TenantAPIView):
    model = Message
    serializer_class = MessageSerializer
    filter_backends: list = []

    def get_message(self) -> Message:
        return self.get_scoped_or_404(Message, conversation_id=self.kwargs["id"], id=self.kwargs["message_id"])

    @extend_schema(
        operation_id="conversations_messages_feedback_set",
        request=FeedbackInputSerializer,
        responses={201: MessageSerializer, 200: MessageSerializer},
        tags=TAGS,
        description="Rates an assistant message (thumbs up or down, with an optional comment of at most "
        f"{feedback.FEEDBACK_COMMENT_MAX_CHARS} characters) and returns the message with its `feedback`: 201 for a "
        "first rating, 200 when it replaces one. A user or system message is a 400 naming `message_id`.",
    )
    def put(self, request, id, message_id):
        message = self.get_message()
        data = validated(FeedbackInputSerializer, request.data)
        message, created = feedback.message_feedback_set(message=message, **data)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(MessageSerializer(message).data, status=code)

    @extend_schema(
        operation_id="conversations_messages_feedback_delete",
        responses={204: None},
        tags=TAGS,
        description="Takes the rating back (204 also when there was none). A user or system message is a 400.",
    )
    def delete(self, request, id, message_id):
        feedback.message_feedback_clear(message=self.get_message())
        return Response(status=status.HTTP_204_NO_CONTENT)
