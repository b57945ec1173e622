"""Reads of the conversations app. Each takes an already scoped queryset (from
TenantAPIView.get_queryset()/scoped()), so none of them can widen what a caller sees."""

from django.db.models import QuerySet

from conversations.models import Conversation, Message


def conversation_search_by_title(conversations: QuerySet[Conversation], *, query: str) -> QuerySet[Conversation]:
    """Case-insensitive substring match. Scoped to one (organization, owner), the
    conv_owner_activity index bounds the scan to the caller's own conversations; where the
    server offers pg_trgm, migration 0002 adds a trigram index on UPPER(title) as well."""
    return conversations.filter(title__icontains=query)


def message_list(messages: QuerySet[Message], *, conversation: Conversation) -> QuerySet[Message]:
    return messages.filter(conversation=conversation)


def message_recent(messages: QuerySet[Message], *, conversation: Conversation, limit: int) -> list[Message]:
    """The newest `limit` messages, oldest first (read backwards on the unique
    (conversation, sequence) index, then put back in order)."""
    newest = list(messages.filter(conversation=conversation).order_by("-sequence")[:limit])
    newest.reverse()
    return newest


def active_branch_messages(conversation: Conversation) -> QuerySet[Message]:
    """The messages of the conversation's active branch, oldest first: what a reply's
    history, an export and a share snapshot show. Every conversation is one branch today,
    so that is all its messages in sequence order."""
    return Message.objects.filter(conversation=conversation).order_by("sequence")
