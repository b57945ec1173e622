"""Input and output serializers of the conversations API.

Inputs are StrictSerializers (unknown or read-only fields are a 400, never ignored);
outputs are plain read-only serializers. Limits come from settings at request time, so
AGENT_TYPES and MESSAGE_MAX_CHARS stay configurable.
"""

from django.conf import settings
from rest_framework import serializers

from conversations.models import Conversation, ConversationStatus, GenerationStatus, Message, MessageRole
from raptorflow.api import StrictSerializer
from raptorflow.json_fields import MetadataField

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX_CHARS = 255
# The header's schema: what idempotency_key_from accepts (not blank, at most the column).
IDEMPOTENCY_KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_CHARS, "pattern": r"\S"}
TITLE_QUERY_MAX_CHARS = 200


def _agent_type_choices() -> list[str]:
    return list(settings.AGENT_TYPES)


# --- outputs ---------------------------------------------------------------------------


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(min_value=0)
    completion_tokens = serializers.IntegerField(min_value=0)
    total_tokens = serializers.IntegerField(min_value=0)


class ReplyUsageSerializer(UsageSerializer):
    estimated = serializers.BooleanField(
        default=False, help_text="True when the provider reported no usage (an interrupted stream)."
    )


CONTEXT_SOURCES = ["recent", "semantic", "recent+semantic"]


class GenerationSourceSerializer(serializers.Serializer):
    """A message the reply was given as context, with its relevance."""

    message_id = serializers.UUIDField()
    score = serializers.FloatField(min_value=0, max_value=1, help_text="Relevance used to pick the message, 0..1.")
    similarity = serializers.FloatField(
        allow_null=True, min_value=0, max_value=1, help_text="Cosine similarity to the question, when it was searched."
    )
    source = serializers.ChoiceField(
        choices=CONTEXT_SOURCES, help_text="How it was found: among the newest messages, by similarity, or both."
    )


class GenerationErrorSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="upstream_unavailable or upstream_bad_response (the provider failed mid-reply), "
        "client_disconnected, or reply_interrupted."
    )
    message = serializers.CharField()


class GenerationSerializer(serializers.Serializer):
    """What produced a generated reply, written by the server only."""

    provider = serializers.CharField(help_text="The chat provider that answered: openai, gemini or openrouter.")
    model = serializers.CharField(help_text="The model as the provider named it.")
    usage = ReplyUsageSerializer()
    response_time_ms = serializers.IntegerField(min_value=0)
    sources = GenerationSourceSerializer(many=True, help_text="The context the model was given.")
    status = serializers.ChoiceField(
        choices=GenerationStatus.choices,
        help_text="incomplete: the provider failed or the client left mid-reply; the content is what arrived.",
    )
    reply_to = serializers.UUIDField(required=False, help_text="The user message this reply answers.")
    error = GenerationErrorSerializer(required=False, help_text="Why the reply is not complete.")


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
    generation = GenerationSerializer(
        read_only=True,
        allow_null=True,
        help_text="A generated reply's provider, model, usage, sources and status (read-only); null otherwise.",
    )
    sequence = serializers.IntegerField(min_value=1, help_text="1..N within the conversation, in order of arrival.")

    class Meta:
        model = Message
        fields = ["id", "conversation_id", "role", "content", "metadata", "generation", "sequence", "created_at"]
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
