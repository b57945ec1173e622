"""Input and output shapes of the rag endpoints."""

from rest_framework import serializers

from conversations.models import MessageRole
from conversations.serializers import (
    CONTEXT_SOURCES,
    SOURCE_KINDS,
    MessageContentField,
    MessageSerializer,
    ReplyUsageSerializer,
)
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
    document_ids = serializers.ListField(
        child=serializers.UUIDField(), required=False, min_length=1, max_length=100,
        help_text="Draw only on these documents (each readable by the caller, else 404); default: every readable "
        "document.",
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
    """A numbered source of the reply — an earlier message or a passage of a document — with
    its relevance. The model was asked to cite it as [number]."""

    number = serializers.IntegerField(min_value=1, help_text="Its [n] in the prompt and in the reply's citations.")
    kind = serializers.ChoiceField(choices=SOURCE_KINDS)
    message_id = serializers.UUIDField(allow_null=True, help_text="A message source's id (null for a document).")
    conversation_id = serializers.UUIDField(allow_null=True)
    role = serializers.ChoiceField(choices=MessageRole.choices, allow_null=True)
    document_id = serializers.UUIDField(allow_null=True, help_text="A document source's document (null for a message).")
    chunk_id = serializers.UUIDField(allow_null=True)
    title = serializers.CharField(allow_null=True, help_text="The document's title.")
    page = serializers.IntegerField(allow_null=True, help_text="The page (PDF) or slide (PPTX) of the passage.")
    snippet = serializers.CharField(help_text="The start of the message or passage, whitespace collapsed.")
    score = serializers.FloatField(min_value=0, max_value=1, help_text="Relevance used to pick the message, 0..1.")
    similarity = serializers.FloatField(
        allow_null=True, min_value=0, max_value=1, help_text="Cosine similarity to the question, when it was searched."
    )
    source = serializers.ChoiceField(
        choices=CONTEXT_SOURCES,
        help_text="How it was found: among the newest messages, by similarity, or both; `document` for a passage.",
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


# --- the events of a streamed reply (rag/streaming.py) ----------------------------------
# Documented for generated clients only: rag/streaming.py writes the same fields. Each
# event's `event` is a one-value enum so that a client can narrow the union by it.
REPLY_EVENT_ID_HELP = (
    "The event's id on a resumable stream: send the last one back as `Last-Event-ID` to resume. "
    "Absent where the server does not number its events."
)


class ReplyContextEventDataSerializer(serializers.Serializer):
    user_message = MessageSerializer(help_text="The stored user message.")
    context = ContextItemSerializer(many=True)


class ReplyDeltaEventDataSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="The next piece of the reply, to append.")


class ReplyDoneEventDataSerializer(serializers.Serializer):
    message = MessageSerializer(help_text="The stored assistant message.")
    usage = ReplyUsageSerializer()


class ReplyErrorEventDataSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="e.g. upstream_unavailable, upstream_bad_response, reply_interrupted.")
    message = serializers.CharField()
    partial_message = MessageSerializer(
        allow_null=True, help_text="What arrived before the failure, stored as incomplete; null if nothing did."
    )


class ReplyContextEventSerializer(serializers.Serializer):
    event = serializers.ChoiceField(choices=["context"])
    id = serializers.CharField(required=False, help_text=REPLY_EVENT_ID_HELP)
    data = ReplyContextEventDataSerializer()


class ReplyDeltaEventSerializer(serializers.Serializer):
    event = serializers.ChoiceField(choices=["delta"])
    id = serializers.CharField(required=False, help_text=REPLY_EVENT_ID_HELP)
    data = ReplyDeltaEventDataSerializer()


class ReplyDoneEventSerializer(serializers.Serializer):
    event = serializers.ChoiceField(choices=["done"])
    id = serializers.CharField(required=False, help_text=REPLY_EVENT_ID_HELP)
    data = ReplyDoneEventDataSerializer()


class ReplyErrorEventSerializer(serializers.Serializer):
    event = serializers.ChoiceField(choices=["error"])
    id = serializers.CharField(required=False, help_text=REPLY_EVENT_ID_HELP)
    data = ReplyErrorEventDataSerializer()


REPLY_EVENT_SERIALIZERS = [
    ReplyContextEventSerializer,
    ReplyDeltaEventSerializer,
    ReplyDoneEventSerializer,
    ReplyErrorEventSerializer,
]
