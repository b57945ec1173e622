"""Conversations and their messages: one row per message, private to their owner."""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models
from django.db.models import Q

from raptorflow.tenancy import TenantQuerySet, TenantScope


class ConversationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ARCHIVED = "archived", "Archived"


class MessageRole(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"
    SYSTEM = "system", "System"


class GenerationStatus(models.TextChoices):
    COMPLETE = "complete", "Complete"
    INCOMPLETE = "incomplete", "Incomplete (the provider failed mid-reply)"
    CANCELLED = "cancelled", "Cancelled"


class TitleSource(models.TextChoices):
    USER = "user", "Set by the user"
    GENERATED = "generated", "Generated after the first reply"


class FeedbackRating(models.TextChoices):
    UP = "up", "Thumbs up"
    DOWN = "down", "Thumbs down"


class ShareScope(models.TextChoices):
    ORGANIZATION = "organization", "Members of the organization"
    PUBLIC = "public", "Anyone with the link"


# Limits of a conversation's tags (conversations/tags.py validates them with clear
# messages; the check constraints below hold them for every writer).
MAX_TAGS = 20
TAG_MAX_CHARS = 32


def empty_usage() -> dict:
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


class ConversationQuerySet(TenantQuerySet):
    pass


class Conversation(models.Model):
    tenant_scope = TenantScope.OWNER

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="conversations")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    # Empty until an untitled conversation is titled after its first reply.
    title = models.CharField(max_length=200, blank=True)
    # user: the person's own title, never overwritten; generated: titled after the first
    # reply (conversations/titles.py); null: untitled, waiting for its first reply.
    title_source = models.CharField(max_length=16, choices=TitleSource.choices, null=True, blank=True)
    pinned = models.BooleanField(default=False, db_default=False)
    # Normalized by conversations/tags.py (trimmed, lower case, unique).
    tags = ArrayField(models.CharField(max_length=TAG_MAX_CHARS), default=list, blank=True, db_default=[])
    agent_type = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=ConversationStatus.choices, default=ConversationStatus.ACTIVE)
    message_count = models.PositiveIntegerField(default=0)
    # The client's own data, replaced whole by PATCH (at most 16 KB).
    metadata = models.JSONField(default=dict, blank=True)
    # Token usage accumulated by replies; read-only through the API.
    usage = models.JSONField(default=empty_usage, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    # Newest activity (last message, else creation): the list's sort key, never null so
    # cursor pagination has a total order.
    activity_at = models.DateTimeField(db_index=False)
    # The leaf of the branch the conversation shows (null before its first message): a new
    # message is appended under it. Its path to the root is flagged on_active_branch.
    active_leaf = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    objects = ConversationQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "owner", "-activity_at", "-id"], name="conv_owner_activity"),
            models.Index(fields=["organization", "owner", "status", "-activity_at"], name="conv_owner_status"),
            models.Index(fields=["organization", "owner", "agent_type", "-activity_at"], name="conv_owner_agent"),
            # ?tag= (array containment, @>).
            GinIndex(fields=["tags"], name="conv_tags"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=["active", "archived"]), name="conversation_status_valid"),
            models.CheckConstraint(
                condition=Q(title_source__isnull=True) | Q(title_source__in=["user", "generated"]),
                name="conversation_title_source_valid",
            ),
            models.CheckConstraint(condition=Q(tags__len__lte=MAX_TAGS), name="conversation_tags_limit"),
        ]

    def __str__(self):
        return self.title


class MessageQuerySet(TenantQuerySet):
    pass


class Message(models.Model):
    tenant_scope = TenantScope.OWNER

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    # Messages form a tree: an edit is a sibling of the message it edits, another answer a
    # sibling of the answer. Null for a first message (several roots when the first one was
    # edited). Always a message of the same conversation (the services set it).
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children", db_index=False
    )
    # True for the messages on the path from a root to the conversation's active leaf: what
    # the conversation shows, answers from and exports. Kept by the services under the
    # conversation's row lock, so reading a branch is one indexed filter, not a tree walk;
    # rows loaded in bulk without a tree count as one flat branch.
    on_active_branch = models.BooleanField(default=True, db_default=True)
    # Copied from the conversation so scoping needs no join.
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=16, choices=MessageRole.choices)
    content = models.TextField()
    # The client's own data (a reply's response_time_ms is copied here for the client too).
    metadata = models.JSONField(default=dict, blank=True)
    # What produced a generated reply — {provider, model, usage, response_time_ms, sources,
    # status, reply_to, error?} — written by the server only and read-only through the API,
    # so nothing a client stores can break or forge a reply. Null for every other message.
    generation = models.JSONField(null=True, blank=True)
    # 1..N within the conversation, assigned under a row lock on the conversation.
    sequence = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    # sha256 of the request that used idempotency_key: a retry must send the same request
    # (409 idempotency_key_reused otherwise). Empty on rows stored before it was recorded.
    request_fingerprint = models.CharField(max_length=64, blank=True, default="", db_default="")
    # The owner's rating of an assistant message (conversations/feedback.py); null: none.
    feedback_rating = models.CharField(max_length=8, choices=FeedbackRating.choices, null=True, blank=True)
    feedback_comment = models.TextField(blank=True, default="", db_default="")
    feedback_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "sequence"], name="message_sequence_unique"),
            models.UniqueConstraint(
                fields=["conversation", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="message_idempotency_unique",
            ),
            models.CheckConstraint(condition=Q(role__in=["user", "assistant", "system"]), name="message_role_valid"),
            models.CheckConstraint(
                condition=Q(generation__isnull=True) | Q(role="assistant"), name="message_generation_only_on_replies"
            ),
            models.CheckConstraint(
                condition=Q(feedback_rating__isnull=True) | Q(role="assistant", feedback_rating__in=["up", "down"]),
                name="message_feedback_only_on_replies",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "owner", "-created_at"], name="message_owner_created"),
            # A message's siblings (and children): same conversation, same parent.
            models.Index(fields=["conversation", "parent"], name="message_conversation_parent"),
            # The active branch in order, read on every list, recent and reply.
            models.Index(
                fields=["conversation", "sequence"], condition=Q(on_active_branch=True), name="message_active_branch"
            ),
            # Full-text side of hybrid search; queries must use the same expression.
            GinIndex(SearchVector("content", config="english"), name="message_content_fts"),
            # The feedback counts of /metrics and the admin read only rated messages.
            models.Index(
                fields=["feedback_rating"], condition=Q(feedback_rating__isnull=False), name="message_feedback"
            ),
        ]

    def __str__(self):
        return f"{self.role} #{self.sequence} in {self.conversation_id}"


class RatedMessage(Message):
    """Admin-only view of rated assistant messages (conversations/admin.py FeedbackAdmin)."""

    class Meta:
        proxy = True
        verbose_name = "rated reply"
        verbose_name_plural = "feedback on replies"


class ConversationShareQuerySet(TenantQuerySet):
    pass


class ConversationShare(models.Model):
    """A read-only snapshot of a conversation's active branch, reached through a link
    token (conversations/shares.py). Only the token's sha256 is stored. The snapshot is
    frozen at creation as one JSON document (title; role, content and time of each
    message): it is a copy made for reading, never chat history to append to.

    Scoped like its conversation (the owner lists and revokes it); the link itself is
    resolved by GET /api/shares/{token} through shares.unscoped_share_for_viewer."""

    tenant_scope = TenantScope.OWNER

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # Shares end with their conversation (and with its owner's account, above).
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="shares")
    scope = models.CharField(max_length=16, choices=ShareScope.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=200, blank=True)
    messages = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    view_count = models.PositiveIntegerField(default=0, db_default=0)
    last_viewed_at = models.DateTimeField(null=True, blank=True)

    objects = ConversationShareQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "owner", "conversation", "-created_at"], name="share_conversation"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(scope__in=["organization", "public"]), name="share_scope_valid"),
        ]

    def __str__(self):
        return f"{self.scope} share of {self.conversation_id}"
