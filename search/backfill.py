"""Embedding every message that lacks a vector of a model: the work behind the
backfill_embeddings and reindex_embeddings commands.

Resumable and idempotent by construction: each batch is read from "messages without a
vector of this model" (oldest first, id as tie-breaker), so an interrupted run is simply
run again and continues where it stopped, and storing is an upsert on (message, model)
that never duplicates. Messages taken out of search on purpose are skipped.

The same reads serve the in-process worker of the embedded default (raptorflow.jobs):
`embed_messages` runs a batch of queued embed_message jobs in one provider call, and the
messages without a vector of the active model are its durable backlog — `pending_count`
for /metrics, `sweep` to work it off after a restart or a full queue (search/apps.py
registers both).
"""

import time
from dataclasses import dataclass

from django.db.models import Q
from tqdm import tqdm

from conversations.models import Message
from raptorflow import metrics
from raptorflow.errors import DomainError
from search import selectors, services, tenant_indexes
from search.providers import EmbeddingProvider, active_spec, get_embedding_provider


@dataclass
class BackfillSummary:
    model: str
    pending: int = 0
    embedded: int = 0
    unchanged: int = 0
    skipped: int = 0
    elapsed: float = 0.0
    error: str = ""

    @property
    def remaining(self) -> int:
        return max(0, self.pending - self.embedded - self.unchanged - self.skipped)

    def describe(self) -> str:
        rate = self.embedded / self.elapsed if self.elapsed else 0.0
        text = (
            f"{self.model}: {self.embedded} embedded, {self.unchanged} already up to date, "
            f"{self.skipped} skipped, {self.remaining} remaining of {self.pending} pending "
            f"in {self.elapsed:.1f}s ({rate:.1f} messages/s)"
        )
        return f"{text}; stopped: {self.error}" if self.error else text


def run_backfill(
    *,
    provider: EmbeddingProvider,
    organization_id=None,
    conversation_id=None,
    batch_size: int = 64,
    limit: int | None = None,
    dry_run: bool = False,
    progress_file=None,
) -> BackfillSummary:
    """Embeds up to `limit` pending messages with `provider`, `batch_size` at a time. A
    provider failure stops the run (summary.error says why); what was stored stays."""
    pending = selectors.unscoped_messages_to_embed(
        model=provider.model, organization_id=organization_id, conversation_id=conversation_id
    )
    summary = BackfillSummary(model=provider.model)
    summary.pending = pending.count() if limit is None else min(limit, pending.count())
    if dry_run or not summary.pending:
        return summary

    started = time.monotonic()
    fields = ("id", "content", "conversation_id", "organization_id", "owner_id", "created_at")
    cursor = None
    done = 0
    bar = tqdm(total=summary.pending, unit="msg", desc=provider.model, file=progress_file, mininterval=0.5)
    try:
        while done < summary.pending:
            page = pending
            if cursor is not None:
                created_at, message_id = cursor
                page = page.filter(Q(created_at__gt=created_at) | Q(created_at=created_at, id__gt=message_id))
            batch = list(page.only(*fields)[: min(batch_size, summary.pending - done)])
            if not batch:
                break
            cursor = (batch[-1].created_at, batch[-1].id)
            try:
                result = services.embeddings_store(
                    items=[(message, message.content) for message in batch], provider=provider, on_purpose=False
                )
            except DomainError as exc:
                summary.error = str(exc.detail)
                break
            summary.embedded += result.count(services.CREATED) + result.count(services.UPDATED)
            summary.unchanged += result.count(services.UNCHANGED)
            summary.skipped += result.count(services.SKIPPED)
            done += len(batch)
            bar.update(len(batch))
            metrics.report_backfill_progress(done=done, total=summary.pending, model=provider.model)
    finally:
        bar.close()
        summary.elapsed = time.monotonic() - started
    return summary


# --- the in-process worker's batches and durable backlog (raptorflow.jobs) ----------------

# Messages per embedding call of the in-process worker, queued jobs and sweeps alike.
WORKER_BATCH_SIZE = 64
_FIELDS = ("id", "content", "conversation_id", "organization_id", "owner_id", "created_at")


def embed_messages(*, message_ids, provider: EmbeddingProvider | None = None) -> dict:
    """Embeds these messages with the active model in one provider call, as the
    embed_message job does for one: gone, blank, unchanged and excluded messages are
    skipped. Returns message id -> created / updated / unchanged / skipped; provider
    failures propagate (the worker retries them)."""
    provider = provider or get_embedding_provider()
    messages = list(Message.objects.filter(pk__in=list(message_ids)).only(*_FIELDS))
    statuses = {str(message_id): services.SKIPPED for message_id in message_ids}
    if messages:
        result = services.embeddings_store(
            items=[(message, message.content) for message in messages], provider=provider, on_purpose=False
        )
        statuses.update({str(message_id): status for message_id, status in result.statuses.items()})
    return statuses


def pending_count() -> int:
    """Messages without a vector of the active model (the backlog shown at /metrics)."""
    return selectors.unscoped_messages_to_embed(model=active_spec().model).count()


def sweep(*, batch_size: int = WORKER_BATCH_SIZE):
    """Embeds every message still without a vector of the active model, oldest first, one
    batch per step (a generator: the worker runs queued jobs between steps). Keyset-paged,
    so a message that cannot be embedded (skipped) is passed over, not retried forever.
    Several processes may sweep at once: storing is an upsert, so they only duplicate work."""
    provider = get_embedding_provider()
    pending = selectors.unscoped_messages_to_embed(model=provider.model)
    cursor = None
    while True:
        page = pending
        if cursor is not None:
            created_at, message_id = cursor
            page = page.filter(Q(created_at__gt=created_at) | Q(created_at=created_at, id__gt=message_id))
        batch = list(page.only(*_FIELDS)[:batch_size])
        if not batch:
            return
        cursor = (batch[-1].created_at, batch[-1].id)
        result = services.embeddings_store(
            items=[(message, message.content) for message in batch], provider=provider, on_purpose=False
        )
        for status in result.statuses.values():
            metrics.count_background_job(task="embedding_backlog", outcome=status)
        created = [message_id for message_id, status in result.statuses.items() if status == services.CREATED]
        tenant_indexes.index_owners_if_grown(message_ids=created, model=provider.model, dimensions=provider.dimensions)
        yield len(batch)
