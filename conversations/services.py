"""Writes of the conversations app. Other apps (the RAG reply endpoint) store messages and
token usage through `message_create` and `conversation_add_usage` only, so the counters,
sequence numbers and the message tree have a single writer.

The tree: a message's `parent` is the message it follows. Appending (the default) puts a
message under the conversation's active leaf; an edit (`message_edit`) or another answer
(rag's regenerate, a reply to an answered question) is stored under an older message, so it
becomes a sibling of what was there. Whichever message is stored last becomes the active
leaf, and `message_activate` moves the leaf to another branch. The active branch (root →
leaf) is also flagged on its rows (`on_active_branch`), rewritten in one statement whenever
the leaf moves to another branch — all of it under the conversation's row lock, so two
edits at once give two siblings and a branch whose flags match its leaf."""

import hashlib
import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from billing import quotas
from conversations.models import Conversation, ConversationStatus, Message, MessageRole, TitleSource
from raptorflow import audit, hooks
from raptorflow.errors import Conflict, InvalidInput, NotFound

ARCHIVED_MESSAGE = "This conversation is archived and takes no new messages; set its status back to active first."
KEY_REUSED_MESSAGE = (
    "This Idempotency-Key was already used for a different request in this conversation; "
    "use a new key for a new request."
)


def request_fingerprint(kind: str, **fields) -> str:
    """sha256 of a request's canonical JSON (its kind and the fields that decide its
    result): a retry under an Idempotency-Key must have the same one. Transport options
    (such as a reply's `stream`) are left out by the caller."""
    canonical = json.dumps(
        {"request": kind, **fields}, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotent_replay(message: Message, fingerprint: str) -> Message:
    """`message`, stored under the Idempotency-Key a retry sends again, if the retry is
    the same request; Conflict (409 idempotency_key_reused) if it is another one. Rows
    stored before fingerprints were recorded have none and are returned as they are."""
    if message.request_fingerprint and message.request_fingerprint != fingerprint:
        raise Conflict(KEY_REUSED_MESSAGE, code="idempotency_key_reused")
    return message


def _lock(conversation: Conversation | QuerySet) -> Conversation:
    """The conversation's row, re-read under a row lock held until the transaction ends:
    every writer of its counters and messages goes through here, so they serialize. A
    conversation deleted meanwhile is a 404, as it would have been a moment later.

    `conversation` may also be the caller's scoped queryset of the one conversation a
    request names (a view's `self.scoped(Conversation).filter(id=…)`): then the lookup and
    the lock are one statement, and a conversation that is not the caller's is the same 404."""
    if isinstance(conversation, QuerySet):
        locked = conversation.select_for_update(of=("self",)).first()
    else:
        locked = Conversation.objects.select_for_update().filter(pk=conversation.pk).first()
    if locked is None:
        raise NotFound("Conversation not found.")
    return locked


@transaction.atomic
def conversation_create(
    *,
    organization,
    owner,
    agent_type: str,
    title: str | None = None,
    metadata: dict | None = None,
    pinned: bool = False,
    tags: list[str] | None = None,
) -> Conversation:
    """Without a title the conversation is titled after its first reply (conversations/titles.py)."""
    return Conversation.objects.create(
        organization=organization,
        owner=owner,
        title=title or "",
        title_source=TitleSource.USER if title else None,
        pinned=pinned,
        tags=tags or [],
        agent_type=agent_type,
        metadata=metadata or {},
        # Activity starts at creation; each stored message moves it forward.
        activity_at=timezone.now(),
    )


_UNCHANGED = object()


@transaction.atomic
def conversation_update(
    *,
    conversation: Conversation,
    title=_UNCHANGED,
    status=_UNCHANGED,
    metadata=_UNCHANGED,
    pinned=_UNCHANGED,
    tags=_UNCHANGED,
) -> Conversation:
    """Changes only what is given; metadata and tags are replaced whole. A title given here
    is the person's own: the title job never overwrites it (conversations/titles.py)."""
    changed = []
    fields = (("title", title), ("status", status), ("metadata", metadata), ("pinned", pinned), ("tags", tags))
    for field, value in fields:
        if value is not _UNCHANGED:
            setattr(conversation, field, value)
            changed.append(field)
    if title is not _UNCHANGED:
        conversation.title_source = TitleSource.USER
        changed.append("title_source")
    if changed:
        # Only the changed columns: saving every field would overwrite the counters a
        # concurrent message_create just wrote.
        conversation.save(update_fields=[*changed, "updated_at"])
    return conversation


@transaction.atomic
def conversation_delete(*, conversation: Conversation, actor) -> None:
    """Deletes the conversation with its messages (and their embeddings, by cascade)."""
    # Locked first so a message being stored concurrently either lands before the delete
    # (and is deleted with it) or finds the conversation gone — never an orphan.
    locked = _lock(conversation)
    audit.record(
        "conversation.deleted",
        actor=actor,
        organization=locked.organization,
        target=locked,
        title=locked.title,
        message_count=locked.message_count,
    )
    locked.delete()


@transaction.atomic
def conversation_add_usage(*, conversation: Conversation, prompt_tokens: int, completion_tokens: int) -> Conversation:
    """Adds a reply's token usage to the conversation's read-only `usage` counters."""
    if prompt_tokens < 0 or completion_tokens < 0:
        raise ValueError("token counts cannot be negative")
    locked = _lock(conversation)
    usage = dict(locked.usage or {})
    usage["prompt_tokens"] = int(usage.get("prompt_tokens", 0)) + prompt_tokens
    usage["completion_tokens"] = int(usage.get("completion_tokens", 0)) + completion_tokens
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    locked.usage = usage
    locked.save(update_fields=["usage", "updated_at"])
    conversation.usage, conversation.updated_at = locked.usage, locked.updated_at
    return conversation


APPEND = object()  # message_create's default parent: the conversation's active leaf


@transaction.atomic
def message_create(
    *,
    conversation: Conversation | QuerySet,
    role: str,
    content: str,
    metadata: dict | None = None,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
    generation: dict | None = None,
    enforce_quota: bool = True,
    parent_id=APPEND,
) -> tuple[Message, bool]:
    """Stores one message at the end of the conversation: (message, created).

    By default it follows the active leaf; `parent_id` (the id of a message of this
    conversation, or None for a new root) stores it under another message instead, as a
    sibling of that message's other children. Either way it becomes the active leaf.

    With an idempotency key already used in this conversation for the same request (the
    same `fingerprint`; by default that of this role, content and metadata), the first
    message is returned with created=False and nothing is written (nor counted against the
    quota); for another request it is Conflict (409 idempotency_key_reused).
    Raises Conflict on an archived conversation and PaymentRequired past the plan's quota.
    `generation` is a reply's server-owned data (rag.replies only).
    enforce_quota=False counts the message without refusing it: for an assistant reply
    whose room the reply endpoint checked before it stored anything.
    `conversation` may be a scoped queryset of one conversation (see _lock): the message
    endpoint looks it up and locks it in one statement.

    Without an idempotency key a create is, inside its transaction, three statements: the
    lock, the quota (billing.quotas.reserve_messages, entitlement included) and the insert
    with the counters (tests/conversations/test_write_path_statements.py counts them).
    """
    locked = _lock(conversation)

    if idempotency_key is not None:
        if fingerprint is None:
            fingerprint = request_fingerprint("message", role=role, content=content, metadata=metadata or {})
        existing = Message.objects.filter(conversation=locked, idempotency_key=idempotency_key).first()
        if existing is not None:
            return idempotent_replay(existing, fingerprint), False

    if locked.status == ConversationStatus.ARCHIVED:
        raise Conflict(ARCHIVED_MESSAGE, code="conversation_archived")

    # Before anything is written, so a refused request leaves nothing half-stored.
    # By id: the organization's row itself is not needed here.
    if enforce_quota:
        quotas.reserve_messages(locked.organization_id, 1)
    else:
        quotas.record_messages(locked.organization_id, 1)

    # The row lock makes message_count + 1 the next free sequence number.
    sequence = locked.message_count + 1
    if parent_id is APPEND:
        parent_id = locked.active_leaf_id
    fields = {
        "conversation": locked,
        "parent_id": parent_id,
        "organization_id": locked.organization_id,
        "owner_id": locked.owner_id,
        "role": role,
        "content": content,
        "metadata": metadata or {},
        "generation": generation,
        "sequence": sequence,
        "idempotency_key": idempotency_key,
        "request_fingerprint": fingerprint or "",
    }
    message = Message(**fields)
    # Under the leaf: the branch stays as flagged. Anywhere else: it moves to the new one.
    branch_moves = parent_id != locked.active_leaf_id
    if not branch_moves:
        # The active leaf never has children (whatever is stored becomes the leaf), so an
        # appended message has no siblings: the API shows it without looking them up.
        message.sibling_ids = [message.pk]
    if idempotency_key is None:
        # The row lock rules out a clash on the sequence: no savepoint round trips needed.
        _store(locked, message)
        if branch_moves:
            _flag_active_branch(locked, message.pk)
        return _after_message_stored(conversation, locked, message), True
    try:
        with transaction.atomic():
            _store(locked, message)
    except IntegrityError:
        # Under the lock a same-key twin is already visible above; this covers a caller
        # running at a stricter isolation level than READ COMMITTED.
        if idempotency_key is None:
            raise
        existing = Message.objects.filter(conversation=locked, idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return idempotent_replay(existing, fingerprint), False
    if branch_moves:
        _flag_active_branch(locked, message.pk)
    return _after_message_stored(conversation, locked, message), True


_MESSAGE_FIELDS = Message._meta.concrete_fields
_STORE_MESSAGE = """
WITH stored AS (
    INSERT INTO {messages} ({columns}) VALUES ({values}) RETURNING conversation_id
)
UPDATE {conversations}
SET message_count = %s, active_leaf_id = %s, last_message_at = %s, activity_at = %s, updated_at = %s
FROM stored WHERE {conversations}.id = stored.conversation_id
""".format(  # noqa: S608 - table and column names are our own models', not input
    messages=connection.ops.quote_name(Message._meta.db_table),
    conversations=connection.ops.quote_name(Conversation._meta.db_table),
    columns=", ".join(connection.ops.quote_name(field.column) for field in _MESSAGE_FIELDS),
    values=", ".join(["%s"] * len(_MESSAGE_FIELDS)),
)


def _store(locked: Conversation, message: Message) -> None:
    """Inserts `message` and moves the locked conversation's counters to it in one
    statement (the insert and the UPDATE as one CTE). The values are prepared by the
    model's own fields, as Model.save() would (created_at set, JSON adapted)."""
    values = [field.get_db_prep_save(field.pre_save(message, True), connection) for field in _MESSAGE_FIELDS]
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _STORE_MESSAGE, [*values, message.sequence, message.pk, message.created_at, message.created_at, now]
        )
    message._state.adding, message._state.db = False, connection.alias
    locked.message_count = message.sequence
    locked.active_leaf_id = message.pk
    locked.last_message_at = locked.activity_at = message.created_at
    locked.updated_at = now


def _after_message_stored(conversation: Conversation, locked: Conversation, message: Message) -> Message:
    if isinstance(conversation, Conversation):
        for field in ("message_count", "active_leaf_id", "last_message_at", "activity_at", "updated_at"):
            setattr(conversation, field, getattr(locked, field))

    message_id = message.id
    # Search embeds it (raptorflow/hooks.py), once the message is committed and visible.
    transaction.on_commit(lambda: hooks.message_stored(message_id))
    if message.role == MessageRole.ASSISTANT and locked.title_source is None:
        # The first answer of an untitled conversation: rag titles it (conversations/titles.py).
        conversation_id = locked.pk
        transaction.on_commit(lambda: hooks.untitled_conversation_answered(conversation_id))
    return message


# The path from `leaf` up to its root is flagged, every other message of the conversation
# that was flagged is not: one statement, touching only the old and the new branch.
_FLAG_ACTIVE_BRANCH = """
WITH RECURSIVE branch AS (
    SELECT id, parent_id FROM {messages} WHERE id = %(leaf)s AND conversation_id = %(conversation)s
    UNION ALL
    SELECT m.id, m.parent_id FROM {messages} m JOIN branch b ON m.id = b.parent_id
)
UPDATE {messages} SET on_active_branch = ({messages}.id IN (SELECT id FROM branch))
WHERE conversation_id = %(conversation)s
  AND (on_active_branch OR id IN (SELECT id FROM branch))
  AND on_active_branch IS DISTINCT FROM ({messages}.id IN (SELECT id FROM branch))
""".format(messages=connection.ops.quote_name(Message._meta.db_table))  # noqa: S608 - our table's name

# The newest message under `message` (itself included): a message is always stored after its
# parent, so the highest sequence among the descendants is a leaf.
_NEWEST_DESCENDANT = """
WITH RECURSIVE below AS (
    SELECT id, sequence FROM {messages} WHERE id = %(message)s AND conversation_id = %(conversation)s
    UNION ALL
    SELECT m.id, m.sequence FROM {messages} m JOIN below b ON m.parent_id = b.id
    WHERE m.conversation_id = %(conversation)s
)
SELECT id FROM below ORDER BY sequence DESC LIMIT 1
""".format(messages=connection.ops.quote_name(Message._meta.db_table))  # noqa: S608 - our table's name


def _flag_active_branch(locked: Conversation, leaf_id) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_FLAG_ACTIVE_BRANCH, {"leaf": leaf_id, "conversation": locked.pk})


@transaction.atomic
def message_activate(*, conversation: Conversation | QuerySet, message: Message) -> Conversation:
    """Shows the branch through `message`: its newest descendant becomes the active leaf."""
    locked = _lock(conversation)
    with connection.cursor() as cursor:
        cursor.execute(_NEWEST_DESCENDANT, {"message": message.pk, "conversation": locked.pk})
        row = cursor.fetchone()
    if row is None:
        # Deleted with its conversation meanwhile (the lock above found the conversation).
        raise NotFound("No such message in this conversation.")
    leaf_id = row[0]
    if leaf_id != locked.active_leaf_id:
        _flag_active_branch(locked, leaf_id)
        locked.active_leaf_id = leaf_id
        # updated_at moves too: cached RAG context keyed on the conversation's state expires.
        locked.save(update_fields=["active_leaf", "updated_at"])
    if isinstance(conversation, Conversation):
        conversation.active_leaf_id, conversation.updated_at = locked.active_leaf_id, locked.updated_at
        return conversation
    return locked


def require_user_message(message: Message, *, field: str = "message_id") -> Message:
    if message.role != MessageRole.USER:
        raise InvalidInput({field: ["Only a user message can be edited."]})
    return message


def message_edit(
    *,
    conversation: Conversation | QuerySet,
    message: Message,
    content: str,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
) -> tuple[Message, bool]:
    """A new version of the user message `message`: a sibling with `content` (and the same
    metadata), which becomes the active leaf. The answers under the old version stay on
    their branch. (message, created) as message_create; an Idempotency-Key retry returns
    the first edit."""
    require_user_message(message)
    if fingerprint is None:
        fingerprint = request_fingerprint("edit", message_id=str(message.pk), content=content)
    return message_create(
        conversation=conversation,
        role=MessageRole.USER,
        content=content,
        metadata=message.metadata,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        parent_id=message.parent_id,
    )
