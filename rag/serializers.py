"""Input and output shapes of the rag endpoints."""

from rest_framework import serializers

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
