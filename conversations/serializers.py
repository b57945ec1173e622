"""Input and output serializers of the conversations API.

Inputs are StrictSerializers (unknown or read-only fields are a 400, never ignored);
outputs are plain read-only serializers. Limits come from settings at request time, so
AGENT_TYPES and MESSAGE_MAX_CHARS stay configurable.
"""

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from conversations import selectors
from conversations.feedback import FEEDBACK_COMMENT_MAX_CHARS
from conversations.models import (
    MAX_TAGS,
    TAG_MAX_CHARS,
    Conversation,
    ConversationStatus,
    FeedbackRating,
    GenerationStatus,
    Message,
    MessageRole,
    TitleSource,
)
from conversations.tags import normalize_tags
from raptorflow.api import StrictSerializer
from raptorflow.errors import InvalidInput
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


CONTEXT_SOURCES = ["recent", "semantic", "recent+semantic", "document"]
# A RAG source is an earlier message or a passage of a document (the knowledge base).
SOURCE_KINDS = ["message", "document"]


class GenerationSourceSerializer(serializers.Serializer):
    """A source the reply was given — a message, or a passage of a document (the knowledge
    base) — with its relevance and its [number] in the prompt (null for replies made before
    sources were numbered)."""

    number = serializers.IntegerField(allow_null=True, min_value=1)
    kind = serializers.ChoiceField(choices=SOURCE_KINDS, default="message")
    message_id = serializers.UUIDField(allow_null=True)
    document_id = serializers.UUIDField(allow_null=True)
    chunk_id = serializers.UUIDField(allow_null=True)
    title = serializers.CharField(allow_null=True)
    page = serializers.IntegerField(allow_null=True)
    score = serializers.FloatField(min_value=0, max_value=1, help_text="Relevance used to pick the message, 0..1.")
    similarity = serializers.FloatField(
        allow_null=True, min_value=0, max_value=1, help_text="Cosine similarity to the question, when it was searched."
    )
    source = serializers.ChoiceField(
        choices=CONTEXT_SOURCES, help_text="How it was found: among the newest messages, by similarity, or both."
    )


class GenerationErrorSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="upstream_unavailable or upstream_bad_response (the provider failed mid-reply), cancelled "
        "(POST …/replies/{reply_id}/cancel), or reply_interrupted; client_disconnected on replies stored before "
        "streams outlived their connection."
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
        help_text="incomplete: the provider failed mid-reply; cancelled: the reply was stopped on request. "
        "Either way the content is what the client was sent.",
    )
    reply_to = serializers.UUIDField(required=False, help_text="The user message this reply answers.")
    error = GenerationErrorSerializer(required=False, help_text="Why the reply is not complete.")


class TagsField(serializers.ListField):
    """A conversation's tags (conversations/tags.py): trimmed, lower case, without repeats;
    each 1..TAG_MAX_CHARS characters, at most MAX_TAGS."""

    def __init__(self, **kwargs):
        kwargs.setdefault("child", serializers.CharField(max_length=TAG_MAX_CHARS))
        kwargs.setdefault("max_length", MAX_TAGS)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return normalize_tags(data)
        except InvalidInput as exc:
            raise serializers.ValidationError(exc.extra["fields"]["tags"]) from None


class ConversationSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=ConversationStatus.choices)
    title_source = serializers.ChoiceField(
        choices=TitleSource.choices,
        allow_null=True,
        help_text="user: set by the user (never overwritten); generated: titled after the first reply; "
        "null: untitled until its first reply.",
    )
    tags = serializers.ListField(child=serializers.CharField(max_length=TAG_MAX_CHARS), max_length=MAX_TAGS)
    metadata = MetadataField()
    usage = UsageSerializer(help_text="Token usage of the replies generated in this conversation.")
    last_message_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        model = Conversation
        fields = [
            "id",
            "title",
            "title_source",
            "pinned",
            "tags",
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


class FeedbackSerializer(serializers.Serializer):
    """The owner's rating of an assistant message."""

    rating = serializers.ChoiceField(choices=FeedbackRating.choices, source="feedback_rating")
    comment = serializers.CharField(source="feedback_comment", allow_blank=True)
    rated_at = serializers.DateTimeField(source="feedback_at")


class MessageSerializer(serializers.ModelSerializer):
    conversation_id = serializers.UUIDField()
    role = serializers.ChoiceField(choices=MessageRole.choices)
    metadata = MetadataField()
    generation = GenerationSerializer(
        read_only=True,
        allow_null=True,
        help_text="A generated reply's provider, model, usage, sources and status (read-only); null otherwise.",
    )
    sequence = serializers.IntegerField(
        min_value=1, help_text="1..N within the conversation (every branch), in order of arrival."
    )
    parent_id = serializers.UUIDField(
        allow_null=True, help_text="The message this one follows; null for a first message."
    )
    sibling_ids = serializers.ListField(
        child=serializers.UUIDField(),
        help_text="This message and its siblings (the other versions after the same parent), oldest first.",
    )
    sibling_index = serializers.IntegerField(min_value=0, help_text="This message's place in sibling_ids (0-based).")
    sibling_count = serializers.IntegerField(min_value=1, help_text="How many versions there are (at least 1).")
    on_active_branch = serializers.BooleanField(
        help_text="On the conversation's current branch (what GET …/messages shows)."
    )
    feedback = serializers.SerializerMethodField(
        help_text="The owner's rating of an assistant message (PUT …/feedback); null when unrated."
    )

    class Meta:
        model = Message
        fields = [
            "id",
            "conversation_id",
            "role",
            "content",
            "metadata",
            "generation",
            "feedback",
            "sequence",
            "parent_id",
            "sibling_ids",
            "sibling_index",
            "sibling_count",
            "on_active_branch",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(FeedbackSerializer(allow_null=True))
    def get_feedback(self, message) -> dict | None:
        return FeedbackSerializer(message).data if message.feedback_rating else None

    def to_representation(self, instance):
        # Lists read sibling_ids in their own statement (selectors.with_siblings); a single
        # message (a reply, an edit) looks them up here.
        sibling_ids = getattr(instance, "sibling_ids", None)
        if sibling_ids is None:
            sibling_ids = instance.sibling_ids = selectors.message_sibling_ids(instance)
        instance.sibling_count = len(sibling_ids)
        instance.sibling_index = sibling_ids.index(instance.pk) if instance.pk in sibling_ids else 0
        return super().to_representation(instance)


class ActiveBranchSerializer(serializers.Serializer):
    """Where a conversation's current branch ends, after POST …/messages/{id}/activate."""

    conversation_id = serializers.UUIDField()
    active_leaf_id = serializers.UUIDField(help_text="The newest message of the branch now shown.")
    results = MessageSerializer(many=True, help_text="The branch now shown, root → leaf (its newest 100).")


class MessageRecentSerializer(serializers.Serializer):
    results = MessageSerializer(many=True, help_text="The newest messages, oldest first.")


# --- inputs ----------------------------------------------------------------------------


class ConversationCreateInputSerializer(StrictSerializer):
    """A new conversation; the organization and owner are the caller's."""

    title = serializers.CharField(
        min_length=1,
        max_length=200,
        required=False,
        help_text="Optional: without one the conversation is titled after its first reply (title_source: generated).",
    )
    agent_type = serializers.ChoiceField(choices=[])
    metadata = MetadataField(required=False, default=dict)
    pinned = serializers.BooleanField(required=False, default=False)
    tags = TagsField(required=False, default=list)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent_type"].choices = _agent_type_choices()


class ConversationUpdateInputSerializer(StrictSerializer):
    """Only title, status, metadata, pinned and tags can change; any other field is a 400."""

    title = serializers.CharField(
        min_length=1,
        max_length=200,
        required=False,
        help_text="The user's own title: never replaced by a generated one.",
    )
    status = serializers.ChoiceField(choices=ConversationStatus.choices, required=False)
    metadata = MetadataField(required=False, help_text="Replaces the whole metadata object.")
    pinned = serializers.BooleanField(required=False)
    tags = TagsField(required=False, help_text=f"Replaces the tags: at most {MAX_TAGS}, each 1..{TAG_MAX_CHARS} "
                     "characters; stored trimmed, in lower case, without repeats.")


class FeedbackInputSerializer(StrictSerializer):
    rating = serializers.ChoiceField(choices=FeedbackRating.choices)
    comment = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=FEEDBACK_COMMENT_MAX_CHARS, trim_whitespace=True
    )


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
