"""Reads of the conversations app. Each takes an already scoped queryset (from
TenantAPIView.get_queryset()/scoped()), so none of them can widen what a caller sees."""

from django.db import connection
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from conversations.models import Conversation, Message

_MESSAGES = connection.ops.quote_name(Message._meta.db_table)
# A message's siblings (itself included), oldest first: the messages of its conversation
# with the same parent — both halves of the OR are probes of the (conversation, parent) index.
_SIBLING_IDS = RawSQL(  # noqa: S611 - no input in it
    f"""ARRAY(SELECT s.id FROM {_MESSAGES} s
    WHERE s.conversation_id = {_MESSAGES}.conversation_id
      AND (s.parent_id = {_MESSAGES}.parent_id OR (s.parent_id IS NULL AND {_MESSAGES}.parent_id IS NULL))
    ORDER BY s.sequence)""",  # noqa: S608 - our own table's name
    (),
)


def conversation_search_by_title(conversations: QuerySet[Conversation], *, query: str) -> QuerySet[Conversation]:
    """Case-insensitive substring match. Scoped to one (organization, owner), the
    conv_owner_activity index bounds the scan to the caller's own conversations; where the
    server offers pg_trgm, migration 0002 adds a trigram index on UPPER(title) as well."""
    return conversations.filter(title__icontains=query)


def active_branch_messages(conversation: Conversation, messages: QuerySet[Message] | None = None) -> QuerySet[Message]:
    """The conversation's active branch, root → leaf (oldest first): the rows flagged
    on_active_branch (conversations.services keeps the flags on the path to the active
    leaf), read on a partial index. `messages` is the caller's scoped queryset, when there
    is one; `conversation` itself must already be one the caller may see."""
    messages = Message.objects.all() if messages is None else messages
    return messages.filter(conversation=conversation, on_active_branch=True).order_by("sequence")


def message_history(message_id) -> RawSQL:
    """The ids on the path from a root to message `message_id` (itself included), as a
    subquery for `id__in`: the history a reply to it is given, whichever branch is shown."""
    return RawSQL(  # noqa: S611 - the id is a parameter
        f"""WITH RECURSIVE path AS (
            SELECT id, parent_id FROM {_MESSAGES} WHERE id = %s
            UNION ALL
            SELECT m.id, m.parent_id FROM {_MESSAGES} m JOIN path p ON m.id = p.parent_id
        ) SELECT id FROM path""",  # noqa: S608 - our own table's name
        (message_id,),
    )


def with_siblings(messages: QuerySet[Message]) -> QuerySet[Message]:
    """Each message with `sibling_ids` (its siblings and itself, oldest first), in the same
    statement (one index probe per message), for the API's sibling_index/sibling_count."""
    return messages.annotate(sibling_ids=_SIBLING_IDS)


def message_sibling_ids(message: Message) -> list:
    """`sibling_ids` of one message (for a message not read through with_siblings)."""
    siblings = Message.objects.filter(conversation_id=message.conversation_id)
    if message.parent_id is None:
        siblings = siblings.filter(parent__isnull=True)
    else:
        siblings = siblings.filter(parent_id=message.parent_id)
    return list(siblings.order_by("sequence").values_list("id", flat=True))


def message_list(messages: QuerySet[Message], *, conversation: Conversation) -> QuerySet[Message]:
    """The active branch, with each message's siblings."""
    return with_siblings(active_branch_messages(conversation, messages))


def message_recent(messages: QuerySet[Message], *, conversation: Conversation, limit: int) -> list[Message]:
    """The newest `limit` messages of the active branch, oldest first (read backwards on the
    active-branch index, then put back in order)."""
    newest = list(message_list(messages, conversation=conversation).order_by("-sequence")[:limit])
    newest.reverse()
    return newest

