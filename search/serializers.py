"""Input and output serializers of the search endpoints (SPEC §4 "Search")."""

from django.conf import settings
from rest_framework import serializers

from raptorflow.api import StrictSerializer
from search.selectors import MODE_VECTOR, MODES
from search.services import CREATED, SKIPPED, UNCHANGED, UPDATED

LIMIT_DEFAULT, LIMIT_MAX = 10, 50
BATCH_MAX_MESSAGES = 256


def _text_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=settings.MESSAGE_MAX_CHARS, **kwargs)


class EmbedTextInputSerializer(StrictSerializer):
    """The body of POST embed-text."""

    text = _text_field()


class EmbedTextOutputSerializer(serializers.Serializer):
    embedding = serializers.ListField(child=serializers.FloatField())
    model = serializers.CharField()
    dimensions = serializers.IntegerField()


class EmbedAndStoreInputSerializer(StrictSerializer):
    """The body of POST embed-and-store."""

    message_id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    text = _text_field(required=False, help_text="What to embed instead of the message's content.")


class EmbeddingSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The embedding's id (DELETE /api/search/embeddings/{id}).")
    message_id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    model = serializers.CharField()
    dimensions = serializers.IntegerField()
    text_sha256 = serializers.CharField(help_text="sha256 of the embedded text.")
    status = serializers.ChoiceField(
        choices=[CREATED, UPDATED, UNCHANGED],
        help_text="created, updated (the text changed) or unchanged (same text: nothing was embedded).",
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SearchOptionsSerializer(serializers.Serializer):
    query = _text_field()
    limit = serializers.IntegerField(min_value=1, max_value=LIMIT_MAX, default=LIMIT_DEFAULT)
    min_similarity = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    mode = serializers.ChoiceField(choices=MODES, default=MODE_VECTOR)


class SemanticSearchInputSerializer(SearchOptionsSerializer, StrictSerializer):
    """The body of POST semantic-search."""


class SemanticSearchScopeSerializer(serializers.Serializer):
    """The query string of POST semantic-search."""

    conversation_id = serializers.UUIDField(required=False)


class GlobalSearchQuerySerializer(SearchOptionsSerializer):
    """The query string of GET semantic-search/global."""


class SearchHitSerializer(serializers.Serializer):
    message_id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    role = serializers.CharField()
    content = serializers.CharField()
    similarity = serializers.FloatField(help_text="max(0, 1 - cosine distance).")
    created_at = serializers.DateTimeField()
    on_active_branch = serializers.BooleanField(
        help_text="False for a message on a branch its conversation does not show (an earlier version)."
    )


class SearchResultsSerializer(serializers.Serializer):
    query = serializers.CharField()
    model = serializers.CharField(help_text="The embedding model whose vectors were searched.")
    mode = serializers.ChoiceField(choices=MODES)
    count = serializers.IntegerField()
    results = SearchHitSerializer(many=True)


class ModelCountSerializer(serializers.Serializer):
    model = serializers.CharField()
    dimensions = serializers.IntegerField()
    count = serializers.IntegerField()


class EmbeddingStatsSerializer(serializers.Serializer):
    provider = serializers.CharField(help_text="The active embedding provider.")
    model = serializers.CharField(help_text="The active embedding model (the one search uses).")
    dimensions = serializers.IntegerField()
    total_messages = serializers.IntegerField(help_text="The caller's messages.")
    embedded_messages = serializers.IntegerField(help_text="The caller's messages with a vector of the active model.")
    excluded_messages = serializers.IntegerField(help_text="Messages whose embedding was deleted on purpose.")
    pending_messages = serializers.IntegerField(help_text="Messages waiting to be embedded.")
    coverage = serializers.FloatField(help_text="embedded_messages / total_messages (0..1).")
    by_model = ModelCountSerializer(many=True)


class BatchEmbedInputSerializer(StrictSerializer):
    """The body of POST batch-embed: `message_ids` or `conversation_id`, not both."""

    message_ids = serializers.ListField(
        child=serializers.UUIDField(), min_length=1, max_length=BATCH_MAX_MESSAGES, required=False
    )
    conversation_id = serializers.UUIDField(required=False)

    def validate(self, attrs):
        if ("message_ids" in attrs) == ("conversation_id" in attrs):
            raise serializers.ValidationError(
                {"non_field_errors": ["Give either message_ids or conversation_id (exactly one)."]}
            )
        return attrs


class BatchEmbedItemSerializer(serializers.Serializer):
    message_id = serializers.UUIDField()
    embedding_id = serializers.UUIDField(allow_null=True, help_text="Null when the message was skipped.")
    status = serializers.ChoiceField(choices=[CREATED, UPDATED, UNCHANGED, SKIPPED])


class BatchEmbedOutputSerializer(serializers.Serializer):
    model = serializers.CharField()
    dimensions = serializers.IntegerField()
    requested = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    skipped = serializers.IntegerField(
        help_text="Empty messages and, for a whole conversation, messages taken out of search on purpose."
    )
    results = BatchEmbedItemSerializer(many=True)
