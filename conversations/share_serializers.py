"""Serializers of share links (conversations/shares.py)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from conversations.models import ConversationShare, MessageRole, ShareScope
from conversations.shares import SHARE_STATUSES, share_status
from raptorflow.api import StrictSerializer


class ShareCreateInputSerializer(StrictSerializer):
    scope = serializers.ChoiceField(
        choices=ShareScope.choices,
        help_text="organization: members of this organization; public: anyone with the link (only when the "
        "organization allows public links).",
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When the link stops working (in the future); none: until revoked."
    )


class ShareSerializer(serializers.ModelSerializer):
    """A share as its owner sees it (never the token, which is shown once)."""

    scope = serializers.ChoiceField(choices=ShareScope.choices)
    status = serializers.SerializerMethodField(help_text="active, revoked, or expired.")
    conversation_id = serializers.UUIDField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    last_viewed_at = serializers.DateTimeField(allow_null=True)
    message_count = serializers.SerializerMethodField(help_text="Messages in the snapshot.")

    class Meta:
        model = ConversationShare
        fields = [
            "id",
            "conversation_id",
            "scope",
            "status",
            "title",
            "message_count",
            "created_at",
            "expires_at",
            "revoked_at",
            "view_count",
            "last_viewed_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=SHARE_STATUSES))
    def get_status(self, share) -> str:
        return share_status(share)

    def get_message_count(self, share) -> int:
        return len(share.messages)


class CreatedShareSerializer(ShareSerializer):
    token = serializers.CharField(
        help_text="The link's secret, shown only in this response: GET /api/shares/{token} opens the snapshot."
    )
    url = serializers.URLField(help_text="GET this URL to read the snapshot.")

    class Meta(ShareSerializer.Meta):
        fields = [*ShareSerializer.Meta.fields, "token", "url"]
        read_only_fields = fields


class SharedMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=MessageRole.choices)
    content = serializers.CharField()
    created_at = serializers.DateTimeField()


class SharedConversationSerializer(serializers.Serializer):
    """The snapshot a link opens: titles, roles, contents and timestamps only."""

    title = serializers.CharField(allow_blank=True)
    scope = serializers.ChoiceField(choices=ShareScope.choices)
    shared_at = serializers.DateTimeField(source="created_at")
    expires_at = serializers.DateTimeField(allow_null=True)
    messages = SharedMessageSerializer(many=True, help_text="The active branch when the link was made, oldest first.")
