"""The caller's data export (GET /api/auth/me/export): their own conversations with every
message, in the organization of their access token.

It lives in conversations, the lowest layer holding a person's own content; the URL stays
under /api/auth/me. Higher layers (documents) add their part without conversations
importing them: they call `export_sections.register(ExportSection(...))` in their
AppConfig.ready(), naming the key, the serializer field that describes it (so the OpenAPI
schema types it) and a function that collects the caller's rows for it.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from rest_framework import serializers

from accounts.serializers import OrganizationSerializer, UserSerializer
from conversations.models import Message
from conversations.selectors import with_siblings
from conversations.serializers import ConversationSerializer, MessageSerializer
from raptorflow.hooks import HookPoint


@dataclass(frozen=True)
class ExportSection:
    name: str
    field: serializers.Field
    # collect(user, organization) -> the data `field` serializes
    collect: Callable


export_sections = HookPoint("export_sections")


def conversations_for_export(conversations: QuerySet) -> QuerySet:
    """Conversations (already scoped to their owner) with their active branch's messages in
    order (the conversation as its owner sees it)."""
    return conversations.order_by("created_at", "id").prefetch_related(
        Prefetch("messages", queryset=with_siblings(Message.objects.filter(on_active_branch=True)).order_by("sequence"))
    )


class ExportConversationSerializer(ConversationSerializer):
    messages = MessageSerializer(
        many=True, help_text="The messages of the active branch, oldest first (other versions are in sibling_ids)."
    )

    class Meta(ConversationSerializer.Meta):
        fields = [*ConversationSerializer.Meta.fields, "messages"]
        read_only_fields = fields


class _AccountExportBase(serializers.Serializer):
    exported_at = serializers.DateTimeField()
    scope = serializers.ChoiceField(
        choices=["current_organization"],
        help_text="The export holds the caller's own conversations in the organization of the access token "
        "(switch organization to export another one).",
    )
    user = UserSerializer()
    organization = OrganizationSerializer()
    conversations = ExportConversationSerializer(many=True)


def _sections() -> list[ExportSection]:
    return list(export_sections.receivers)


def account_export_serializer_class() -> type[serializers.Serializer]:
    """The export's serializer: the conversations part plus every registered section."""
    return _serializer_class(tuple(_sections()))


@functools.cache
def _serializer_class(sections: tuple[ExportSection, ...]) -> type[serializers.Serializer]:
    # One class per set of sections, named once for the schema's component.
    fields = {section.name: section.field for section in sections}
    return type("AccountExportSerializer", (_AccountExportBase,), fields)


def account_export(*, user, organization, conversations: QuerySet) -> dict:
    """Everything the export holds, ready for account_export_serializer_class()."""
    data = {
        "exported_at": timezone.now(),
        "scope": "current_organization",
        "user": user,
        "organization": organization,
        "conversations": conversations_for_export(conversations),
    }
    for section in _sections():
        data[section.name] = section.collect(user, organization)
    return data
