"""Input and output serializers of the conversations API.

Inputs are StrictSerializers (unknown or read-only fields are a 400, never ignored);
outputs are plain read-only serializers. Limits come from settings at request time, so
AGENT_TYPES and MESSAGE_MAX_CHARS stay configurable.
"""

from django.conf import settings
from rest_framework import serializers

from conversations.models import Conversation, ConversationStatus, Message, MessageRole
from raptorflow.api import StrictSerializer
from raptorflow.json_fields import MetadataField

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX_CHARS = 255
TITLE_QUERY_MAX_CHARS = 200


def _agent_type_choices() -> list[str]:
    return list(settings.AGENT_TYPES)


# --- outputs ---------------------------------------------------------------------------


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(min_value=0)
    completion_tokens = serializers.IntegerField(min_value=0)
    total_tokens = serializers.IntegerField(min_value=0)


class ConversationSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=ConversationStatus.choices)
    metadata = MetadataField()
    usage = UsageSerializer(help_text="Token usage of the replies generated in this conversation.")
    last_message_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        model = Conversation
        fields = [
            "id",
            "title",
            "agent_type",
            "status",
            "message_count",
            "metadata",
            "usage",
            "created_at",
            "updated_at",
            "last_message_at",
        ]
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    conversation_id = serializers.UUIDField()
    role = serializers.ChoiceField(choices=MessageRole.choices)
    metadata = MetadataField()
    sequence = serializers.IntegerField(min_value=1, help_text="1..N within the conversation, in order of arrival.")

    class Meta:
        model = Message
        fields = ["id", "conversation_id", "role", "content", "metadata", "sequence", "created_at"]
        read_only_fields = fields


class MessageRecentSerializer(serializers.Serializer):
    results = MessageSerializer(many=True, help_text="The newest messages, oldest first.")


# --- inputs ----------------------------------------------------------------------------


class ConversationCreateInputSerializer(StrictSerializer):
    """A new conversation; the organization and owner are the caller's."""

    title = serializers.CharField(min_length=1, max_length=200)
    agent_type = serializers.ChoiceField(choices=[])
    metadata = MetadataField(required=False, default=dict)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent_type"].choices = _agent_type_choices()


class ConversationUpdateInputSerializer(StrictSerializer):
    """Only title, status and metadata can change; any other field is a 400."""

    title = serializers.CharField(min_length=1, max_length=200, required=False)
    status = serializers.ChoiceField(choices=ConversationStatus.choices, required=False)
    metadata = MetadataField(required=False, help_text="Replaces the whole metadata object.")


class MessageContentField(serializers.CharField):
    """A message's text: whitespace is part of it (code, Markdown), only a blank message
    is refused, and it holds at most settings.MESSAGE_MAX_CHARS characters (read at
    request time, so the limit stays configurable)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        if len(value) > settings.MESSAGE_MAX_CHARS:
            raise serializers.ValidationError(
                f"Ensure this field has no more than {settings.MESSAGE_MAX_CHARS} characters."
            )
        return value


class MessageCreateInputSerializer(StrictSerializer):
    """A message appended to the conversation; its sequence number is assigned by the server."""

    role = serializers.ChoiceField(choices=MessageRole.choices)
    content = MessageContentField()
    metadata = MetadataField(required=False, default=dict)


class TitleSearchQuerySerializer(serializers.Serializer):
    # Not strict: the same query string carries cursor and page_size.
    q = serializers.CharField(max_length=TITLE_QUERY_MAX_CHARS, help_text="Case-insensitive part of the title.")


def idempotency_key_from(request) -> str | None:
    """The request's Idempotency-Key header: None when absent, a 400 naming the header when
    blank or longer than the stored column."""
    key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
    if key is None:
        return None
    if not key.strip():
        raise serializers.ValidationError({IDEMPOTENCY_KEY_HEADER: ["May not be blank."]})
    if len(key) > IDEMPOTENCY_KEY_MAX_CHARS:
        raise serializers.ValidationError(
            {IDEMPOTENCY_KEY_HEADER: [f"Must be at most {IDEMPOTENCY_KEY_MAX_CHARS} characters."]}
        )
    return key
