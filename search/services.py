"""Writes of the search app: storing, refreshing and deleting message embeddings.

    embeddings_store(*, items, provider, on_purpose) -> StoreResult       the core, batched
    embedding_store(*, message, text=None, provider=None) -> (row, status)  embed-and-store
    embedding_delete(*, embedding) -> None                                  takes the message out of search
    unscoped_message_embed(*, message_id) -> str                            the background job's work

Re-embedding the same text is a no-op: the sha256 of the text is compared with the stored
one before any provider is called. The provider is called outside any transaction, so no
row lock is held during an HTTP request. Embeddings are counted with
billing.quotas.record_embeddings (automatic ones are counted, never refused).
"""

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Organization
from billing import quotas
from conversations.models import Conversation, Message
from raptorflow.errors import InvalidInput, NotFound
from search.models import ActiveEmbeddingModel, MessageEmbedding, SearchExclusion
from search.providers import EmbeddingProvider, get_embedding_provider

CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"
SKIPPED = "skipped"  # blank, deleted meanwhile, or taken out of search on purpose


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class StoreResult:
    model: str
    dimensions: int
    #: message id -> created / updated / unchanged / skipped
    statuses: dict[UUID, str] = field(default_factory=dict)
    #: message id -> its row of this model (for every message that has one afterwards)
    embeddings: dict[UUID, MessageEmbedding] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for value in self.statuses.values() if value == status)


def embeddings_store(
    *, items: Sequence[tuple[Message, str]], provider: EmbeddingProvider, on_purpose: bool
) -> StoreResult:
    """Embeds each (message, text) with `provider` unless the message already has a vector
    of this model for the same text, and stores the vectors (one row per message and model).

    on_purpose: the caller named these messages (embed-and-store, batch-embed), which brings
    a message taken out of search back in. Otherwise (automatic embedding, backfill,
    reindex) such messages are skipped.
    """
    result = StoreResult(model=provider.model, dimensions=provider.dimensions)
    texts = {message.id: text for message, text in items}
    messages = {message.id: message for message, _ in items}
    for message_id, text in texts.items():
        if not text.strip():
            result.statuses[message_id] = SKIPPED
    wanted = [message_id for message_id in texts if message_id not in result.statuses]

    stored = dict(
        MessageEmbedding.objects.filter(message_id__in=wanted, model=provider.model).values_list(
            "message_id", "text_sha256"
        )
    )
    excluded = set() if on_purpose else set(_excluded(wanted))
    todo = []
    for message_id in wanted:
        if message_id in excluded:
            result.statuses[message_id] = SKIPPED
        elif stored.get(message_id) == text_sha256(texts[message_id]):
            result.statuses[message_id] = UNCHANGED
        else:
            todo.append(message_id)

    # The slow part, outside any transaction.
    vectors = dict(zip(todo, provider.embed([texts[message_id] for message_id in todo]), strict=True)) if todo else {}

    # On purpose, even unchanged messages are written to (their exclusion is cleared).
    locked = wanted if on_purpose else todo
    if locked:
        _store(
            result,
            provider=provider,
            messages=messages,
            texts=texts,
            todo=todo,
            vectors=vectors,
            locked=locked,
            on_purpose=on_purpose,
        )
    result.embeddings = {
        row.message_id: row for row in MessageEmbedding.objects.filter(message_id__in=list(texts), model=provider.model)
    }
    return result


def _store(result: StoreResult, *, provider, messages, texts, todo, vectors, locked, on_purpose) -> None:
    with transaction.atomic():
        # Either a concurrent embedding_delete excluded a message before (we skip it) or it
        # runs after us; a deleted conversation or message is simply skipped.
        alive = _lock_messages(
            conversation_ids={messages[message_id].conversation_id for message_id in locked}, message_ids=locked
        )
        if on_purpose:
            SearchExclusion.objects.filter(message_id__in=alive).delete()
        else:
            excluded_now = set(_excluded(todo))
            alive -= excluded_now
        rows = {
            row.message_id: row
            for row in MessageEmbedding.objects.select_for_update().filter(message_id__in=todo, model=provider.model)
        }
        to_create, to_update = [], []
        now = timezone.now()
        for message_id in todo:
            if message_id not in alive:
                result.statuses[message_id] = SKIPPED
                continue
            digest = text_sha256(texts[message_id])
            row = rows.get(message_id)
            if row is None:
                message = messages[message_id]
                to_create.append(
                    MessageEmbedding(
                        message_id=message_id,
                        conversation_id=message.conversation_id,
                        organization_id=message.organization_id,
                        owner_id=message.owner_id,
                        model=provider.model,
                        dimensions=provider.dimensions,
                        embedding=vectors[message_id],
                        text_sha256=digest,
                    )
                )
                result.statuses[message_id] = CREATED
            elif row.text_sha256 == digest:
                # Stored by a concurrent writer since we looked.
                result.statuses[message_id] = UNCHANGED
            else:
                row.embedding, row.text_sha256, row.dimensions, row.updated_at = (
                    vectors[message_id],
                    digest,
                    provider.dimensions,
                    now,
                )
                to_update.append(row)
                result.statuses[message_id] = UPDATED
        # A concurrent writer may insert the same (message, model) first: its vector is as
        # good as ours, so the conflict is ignored rather than turned into an error.
        MessageEmbedding.objects.bulk_create(to_create, ignore_conflicts=True)
        MessageEmbedding.objects.bulk_update(to_update, ["embedding", "text_sha256", "dimensions", "updated_at"])

        embedded_per_org = Counter(
            messages[message_id].organization_id
            for message_id, status in result.statuses.items()
            if status in (CREATED, UPDATED)
        )
        organizations = Organization.objects.in_bulk(list(embedded_per_org))
        for organization_id, count in embedded_per_org.items():
            quotas.record_embeddings(organizations[organization_id], count)


def _lock_messages(*, conversation_ids, message_ids) -> set[UUID]:
    """Row locks every writer of embeddings takes, always in this order: the conversations
    (FOR KEY SHARE), then the messages (FOR NO KEY UPDATE), each sorted by id. Deleting a
    conversation (conversations.services) locks its row FOR UPDATE before it deletes
    anything, so either it waits for us or we wait for it, never both at once (a deadlock).
    Returns the ids of the messages that still exist."""
    if not message_ids:
        return set()
    table = connection.ops.quote_name(Conversation._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE",  # noqa: S608 (table name only)
            [sorted(conversation_ids)],
        )
    return set(
        Message.objects.select_for_update(no_key=True)
        .filter(id__in=list(message_ids))
        .order_by("id")
        .values_list("id", flat=True)
    )


def _excluded(message_ids) -> list[UUID]:
    return list(SearchExclusion.objects.filter(message_id__in=list(message_ids)).values_list("message_id", flat=True))


def embedding_store(
    *, message: Message, text: str | None = None, provider: EmbeddingProvider | None = None
) -> tuple[MessageEmbedding, str]:
    """Embeds one message on purpose (embed-and-store): its content, or `text` when given.
    Returns its row of the active model and created / updated / unchanged."""
    provider = provider or get_embedding_provider()
    result = embeddings_store(
        items=[(message, message.content if text is None else text)], provider=provider, on_purpose=True
    )
    row = result.embeddings.get(message.id)
    if row is None:
        if not (message.content if text is None else text).strip():
            raise InvalidInput({"text": ["There is no text to embed: the message is empty and no text was given."]})
        raise NotFound("The message was deleted.")
    return row, result.statuses[message.id]


@transaction.atomic
def embedding_delete(*, embedding: MessageEmbedding) -> None:
    """Deletes the message's vectors (of every model, so a reindex in progress does not
    bring it back) and takes the message out of search until it is embedded again on
    purpose."""
    if not _lock_messages(conversation_ids=[embedding.conversation_id], message_ids=[embedding.message_id]):
        return
    message = Message.objects.get(pk=embedding.message_id)
    MessageEmbedding.objects.filter(message_id=message.pk).delete()
    SearchExclusion.objects.get_or_create(
        message=message, defaults={"organization_id": message.organization_id, "owner_id": message.owner_id}
    )


def unscoped_message_embed(*, message_id, provider: EmbeddingProvider | None = None) -> str:
    """The background job's work: embeds a new message with the active model unless it is
    gone, blank, already embedded with the same text, or taken out of search. Provider
    failures propagate (the job retries them)."""
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        return SKIPPED
    provider = provider or get_embedding_provider()
    result = embeddings_store(items=[(message, message.content)], provider=provider, on_purpose=False)
    return result.statuses[message.id]


def text_embed(*, organization, text: str) -> tuple[EmbeddingProvider, list[float]]:
    """embed-text: the vector of `text` with the active model (counted, not stored)."""
    provider = get_embedding_provider()
    vector = provider.embed_one(text)
    quotas.record_embeddings(organization, 1)
    return provider, vector


def active_model_switch(*, spec) -> ActiveEmbeddingModel:
    """Makes `spec` the model search serves (reindex_embeddings, once its vectors exist)."""
    row, _ = ActiveEmbeddingModel.objects.update_or_create(
        pk=1, defaults={"provider": spec.provider, "model": spec.model, "dimensions": spec.dimensions}
    )
    return row


def unscoped_embeddings_drop_other_models(*, keep_model: str) -> int:
    """Deletes every vector not of `keep_model` and drops those models' HNSW indexes."""
    from search import vector_index

    models = set(MessageEmbedding.objects.exclude(model=keep_model).values_list("model", flat=True).distinct())
    deleted, _ = MessageEmbedding.objects.exclude(model=keep_model).delete()
    for model in models:
        vector_index.drop_index(model)
    return deleted
