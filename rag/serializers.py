"""Input and output shapes of the rag endpoints."""

from rest_framework import serializers

from conversations.models import MessageRole
from conversations.serializers import CONTEXT_SOURCES, MessageContentField, MessageSerializer, ReplyUsageSerializer
from rag.models import ChatProviderName, ProviderKey
from raptorflow.api import StrictSerializer


# --- provider keys ---------------------------------------------------------------------
class ProviderKeySerializer(serializers.ModelSerializer):
    """A stored key as the API shows it: which provider and its last four characters."""

    provider = serializers.ChoiceField(choices=ChatProviderName.choices, read_only=True)

    class Meta:
        model = ProviderKey
        fields = ["provider", "last4", "created_at", "updated_at"]
        read_only_fields = fields


class ProviderKeyInputSerializer(StrictSerializer):
    api_key = serializers.CharField(min_length=8, max_length=512, write_only=True)

    def validate_api_key(self, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise serializers.ValidationError("An API key contains no whitespace.")
        return value


# --- replies ---------------------------------------------------------------------------
class ReplyInputSerializer(StrictSerializer):
    """Either `content` (a new user message, stored before anything else happens) or
    `message_id` (ask again for an existing user message of this conversation)."""

    content = MessageContentField(required=False)
    message_id = serializers.UUIDField(required=False)
    stream = serializers.BooleanField(
        required=False, default=False, help_text="Answer with server-sent events (text/event-stream)."
    )

    def validate(self, attrs):
        if ("content" in attrs) == ("message_id" in attrs):
            raise serializers.ValidationError({"content": ["Give either content or message_id (not both)."]})
        return attrs


class EditInputSerializer(StrictSerializer):
    """A new version of a user message, answered at once with `reply: true`."""

    content = MessageContentField()
    reply = serializers.BooleanField(
        required=False, default=False, help_text="Also generate the assistant's answer (as POST …/reply does)."
    )
    stream = serializers.BooleanField(
        required=False, default=False, help_text="With reply: answer with server-sent events."
    )

    def validate(self, attrs):
        if attrs["stream"] and not attrs["reply"]:
            raise serializers.ValidationError({"stream": ["Only an edit with reply: true can stream."]})
        return attrs


class RegenerateInputSerializer(StrictSerializer):
    stream = serializers.BooleanField(
        required=False, default=False, help_text="Answer with server-sent events (text/event-stream)."
    )


class ContextItemSerializer(serializers.Serializer):
    """A message used as context for the reply, with its relevance."""

    message_id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    role = serializers.ChoiceField(choices=MessageRole.choices)
    snippet = serializers.CharField(help_text="The start of the message, whitespace collapsed.")
    score = serializers.FloatField(min_value=0, max_value=1, help_text="Relevance used to pick the message, 0..1.")
    similarity = serializers.FloatField(
        allow_null=True, min_value=0, max_value=1, help_text="Cosine similarity to the question, when it was searched."
    )
    source = serializers.ChoiceField(
        choices=CONTEXT_SOURCES, help_text="How it was found: among the newest messages, by similarity, or both."
    )


class ReplySerializer(serializers.Serializer):
    user_message = MessageSerializer()
    message = MessageSerializer(help_text="The assistant's reply.")
    context = ContextItemSerializer(many=True)
    usage = ReplyUsageSerializer()


def reply_body(*, user_message, message, context) -> dict:
    return ReplySerializer(
        {
            "user_message": user_message,
            "message": message,
            "context": context,
            "usage": message.generation["usage"],
        }
    ).data
