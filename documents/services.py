"""Writes of the knowledge base: upload, change, delete, (re)process, and what the hook
points ask of documents when people or organizations go.

Upload (document_upload): the file is already on disk (documents.uploads); its type is
sniffed from the bytes (415 before anything is stored), identical bytes the uploader can
already read answer with that document, then — in one transaction holding the
organization's row lock, so concurrent uploads of one organization queue and each counts
the others — the plan's documents and bytes are checked (402), the file is stored and the
row written. A refusal stores nothing; a failure after the file was stored deletes it.
Processing is a background job (documents.tasks) scheduled once the row is committed.

Processing (unscoped_document_ingest) reads, chunks and embeds with nothing written but the
status and progress; chunks and vectors are written in one transaction at the end, so a
provider outage mid-way leaves the document `failed` (reprocess retries it) and never
half-embedded. Each (re)process bumps `processing_generation`; a job acts only while its
generation is the latest.

Changing or deleting a document: its uploader, or an admin or owner of its organization
(for a document they can read: a private one of someone else is a 404 before this).
"""

import contextlib
import hashlib
import logging
import os
import tempfile
import time
import uuid

from django.contrib.postgres.search import SearchVector
from django.core.files import File
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum, Value
from django.utils import timezone

from accounts.models import MANAGER_ROLES, Organization
from billing import quotas
from documents import search_plan, sniffing
from documents.chunking import chunk_sections, embedded_text, token_counter
from documents.extraction import ExtractionFailed, extract
from documents.models import ChunkEmbedding, Document, DocumentChunk, DocumentStatus, Visibility
from raptorflow import audit, jobs, metrics
from raptorflow.errors import DomainError, NotFound, PermissionDenied, UpstreamBadResponse, UpstreamUnavailable
from raptorflow.tenancy import scoped
from search.providers import active_spec, get_embedding_provider

logger = logging.getLogger(__name__)

EMBED_BATCH = 64
HASH_BLOCK = 1024 * 1024
NOT_ALLOWED = "Only the uploader, an admin or an owner can change or delete this document."
EMBEDDING_FAILED = (
    "The embedding service was unavailable while this document was processed; nothing was kept. "
    "Reprocess it to try again."
)


class UnsupportedMediaType(DomainError):
    status_code = 415
    default_code = "unsupported_media_type"


def storage():
    return storages["documents"]


# --- upload ----------------------------------------------------------------------------


def _digest(path: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


@contextlib.contextmanager
def _on_disk(uploaded):
    """A path to the uploaded bytes: the temporary file itself (documents.uploads), or a
    copy when another upload handler kept them in memory."""
    path = getattr(uploaded, "temporary_file_path", None)
    if path is not None:
        yield path()
        return
    with tempfile.NamedTemporaryFile(suffix=".upload") as copy:
        for block in uploaded.chunks():
            copy.write(block)
        copy.flush()
        yield copy.name


def document_upload(*, user, organization, uploaded, title: str | None, visibility: str) -> tuple[Document, bool]:
    """(document, created). Raises UnsupportedMediaType (415) or PaymentRequired (402)
    with nothing stored."""
    filename = os.path.basename(uploaded.name or "")[:255] or "document"
    with _on_disk(uploaded) as path:
        try:
            sniffed = sniffing.sniff(path, filename)
        except sniffing.Unsupported as exc:
            raise UnsupportedMediaType(str(exc)) from None
        sha256, size = _digest(path)
        readable_copy = scoped(Document, user=user, organization=organization).filter(sha256=sha256)
        existing = readable_copy.order_by("created_at").first()
        if existing is not None:
            return existing, False
        document_id = uuid.uuid4()
        stored_name = None
        try:
            with transaction.atomic():
                # Uploads of one organization queue here: the totals below include every
                # committed upload before this one, and so does the look for a copy.
                Organization.objects.select_for_update().filter(pk=organization.pk).first()
                existing = readable_copy.order_by("created_at").first()
                if existing is not None:
                    return existing, False
                totals = Document.objects.filter(organization=organization).aggregate(
                    documents=Count("id"), stored=Sum("size_bytes", default=Value(0))
                )
                quotas.require_document_room(
                    organization, documents=totals["documents"], stored_bytes=totals["stored"], adding_bytes=size
                )
                with open(path, "rb") as handle:
                    stored_name = storage().save(f"{organization.pk}/{document_id}/original", File(handle))
                document = Document.objects.create(
                    id=document_id,
                    organization=organization,
                    owner=user,
                    title=(title or "").strip() or _title_from(filename),
                    visibility=visibility,
                    filename=filename,
                    kind=sniffed.kind,
                    content_type=sniffed.content_type,
                    size_bytes=size,
                    sha256=sha256,
                    file=stored_name,
                )
                audit.record("document.upload", organization=organization, target=document, size_bytes=size)
                _schedule(document)
        except IntegrityError:
            # The same person uploaded the same bytes at the same moment: theirs is the one.
            _delete_file(stored_name)
            winner = Document.objects.filter(organization=organization, owner=user, sha256=sha256).first()
            if winner is None:
                raise
            return winner, False
        except BaseException:
            _delete_file(stored_name)
            raise
    return document, True


def _title_from(filename: str) -> str:
    stem, _ = os.path.splitext(filename)
    return (stem or filename).strip()[:300] or "Untitled document"


def _delete_file(name: str | None) -> None:
    if not name:
        return
    try:
        storage().delete(name)
    except Exception:
        # A file left behind costs space, not correctness; the log names it for an operator.
        logger.exception("Could not delete the stored document file %s", name)


def _schedule(document: Document) -> None:
    from documents.tasks import ingest_document

    jobs.run_after_commit(ingest_document, str(document.pk), document.processing_generation)


# --- change, delete, reprocess ---------------------------------------------------------


def _require_change(document: Document, *, user, membership) -> None:
    if document.owner_id == user.pk:
        return
    if membership is not None and membership.role in MANAGER_ROLES:
        return
    raise PermissionDenied(NOT_ALLOWED)


@transaction.atomic
def document_update(*, user, membership, document: Document, title: str | None = None,
                    visibility: str | None = None) -> Document:
    document = _locked(document)
    _require_change(document, user=user, membership=membership)
    changed = []
    if title is not None and title != document.title:
        document.title, changed = title, [*changed, "title"]
    if visibility is not None and visibility != document.visibility:
        if visibility == Visibility.PRIVATE and document.owner_id is None:
            raise PermissionDenied("This document's uploader has left; it can only stay shared with the organization.")
        document.visibility, changed = visibility, [*changed, "visibility"]
        # The copies scoping reads change with the document, in this transaction.
        DocumentChunk.objects.filter(document=document).update(visibility=visibility)
        ChunkEmbedding.objects.filter(document=document).update(visibility=visibility)
    if changed:
        document.save(update_fields=[*changed, "updated_at"])
        audit.record("document.update", organization=document.organization_id, target=document, fields=changed)
    return document


def _locked(document: Document) -> Document:
    locked = Document.objects.select_for_update().filter(pk=document.pk).first()
    if locked is None:
        raise NotFound("No such document.")
    return locked


def document_delete(*, user, membership, document: Document) -> None:
    with transaction.atomic():
        document = _locked(document)
        _require_change(document, user=user, membership=membership)
        audit.record("document.delete", organization=document.organization_id, target=document)
        _delete_documents([document])


def _delete_documents(documents) -> None:
    """Rows (chunks and vectors cascade) now, files once the deletion commits."""
    names = [document.file for document in documents]
    Document.objects.filter(pk__in=[document.pk for document in documents]).delete()
    transaction.on_commit(lambda: [_delete_file(name) for name in names])


def unscoped_documents_delete(documents) -> None:
    """An operator's deletion (the admin): rows, chunks and vectors, then the files."""
    with transaction.atomic():
        _delete_documents(documents)


@transaction.atomic
def document_reprocess(*, user, membership, document: Document) -> Document:
    """Queues the document to be read and embedded again (with the active model). Its
    current chunks stay searchable until the new ones replace them."""
    document = _locked(document)
    _require_change(document, user=user, membership=membership)
    _requeue(document)
    audit.record("document.reprocess", organization=document.organization_id, target=document)
    return document


def unscoped_document_reprocess(*, document: Document) -> None:
    """The admin's reprocess action (an operator, no membership)."""
    with transaction.atomic():
        _requeue(_locked(document))


def _requeue(document: Document) -> None:
    """A new processing generation (a job still running for the previous one finds itself
    stale), pending again, scheduled after the commit."""
    document.processing_generation += 1
    document.status = DocumentStatus.PENDING
    document.error = document.error_code = ""
    document.chunks_done = 0
    document.save(update_fields=["processing_generation", "status", "error", "error_code", "chunks_done",
                                 "updated_at"])
    _schedule(document)


# --- hook receivers --------------------------------------------------------------------


def unscoped_delete_organization_documents(organization) -> None:
    """organization_deleting: every document of the organization, files included."""
    with transaction.atomic():
        _delete_documents(list(Document.objects.filter(organization=organization).only("pk", "file")))


def unscoped_delete_private_documents_of_member(organization, user) -> None:
    """member_leaving: the member's private documents there; shared ones stay."""
    _delete_documents(
        list(Document.objects.filter(organization=organization, owner=user, visibility=Visibility.PRIVATE)
             .only("pk", "file"))
    )


def unscoped_delete_private_documents_of_account(user) -> None:
    """account_deleting: the user's private documents everywhere; shared ones stay with
    their organizations (owner set to NULL when the user row goes)."""
    _delete_documents(list(Document.objects.filter(owner=user, visibility=Visibility.PRIVATE).only("pk", "file")))


# --- processing ------------------------------------------------------------------------


@contextlib.contextmanager
def _local_copy(name: str):
    """A local path to a stored file: its own path on the file system storage, a
    temporary copy from a remote one (GCS, S3)."""
    store = storage()
    try:
        yield store.path(name)
        return
    except NotImplementedError:
        pass
    with tempfile.NamedTemporaryFile(suffix=".document") as copy, store.open(name, "rb") as source:
        while block := source.read(HASH_BLOCK):
            copy.write(block)
        copy.flush()
        yield copy.name


def _current(document_id, generation: int):
    return Document.objects.filter(pk=document_id, processing_generation=generation)


UNEXPECTED_FAILURE = "Processing failed unexpectedly; nothing was kept. Reprocess the document to try again."


def unscoped_document_ingest(*, document_id, generation: int) -> str:
    """Reads, chunks and embeds one document; returns the outcome ("ready", "failed",
    "stale" when a newer request or a deletion overtook this one). UpstreamUnavailable
    and UpstreamBadResponse from the embedding provider end as `failed` with nothing kept;
    so does any other error (then raised again for the log), so no document is left
    `processing` for ever."""
    started = time.monotonic()
    try:
        return _ingest(document_id, generation, started)
    except Exception:
        document = Document.objects.filter(pk=document_id).first()
        if document is not None:
            _fail(document, generation, "internal", UNEXPECTED_FAILURE, started)
        raise


def _ingest(document_id, generation: int, started: float) -> str:
    claimed = _current(document_id, generation).filter(
        status__in=[DocumentStatus.PENDING, DocumentStatus.PROCESSING]
    ).update(status=DocumentStatus.PROCESSING, processing_started_at=timezone.now(), chunks_done=0, chunks_total=0,
             error="", error_code="")
    if not claimed:
        return "stale"
    document = Document.objects.get(pk=document_id)
    spec = active_spec()
    try:
        provider = get_embedding_provider(spec)
        counter = token_counter(spec)
        with _local_copy(document.file) as path:
            extracted = extract(path, document.kind)
        chunks = chunk_sections(extracted.sections, counter)
        _current(document_id, generation).update(chunks_total=len(chunks), page_count=extracted.page_count)
        vectors: list[list[float]] = []
        for start in range(0, len(chunks), EMBED_BATCH):
            vectors.extend(provider.embed([chunk.embedded_text for chunk in chunks[start : start + EMBED_BATCH]]))
            if not _current(document_id, generation).update(chunks_done=len(vectors)):
                return "stale"
    except ExtractionFailed as exc:
        return _fail(document, generation, exc.code, exc.message, started)
    except (UpstreamUnavailable, UpstreamBadResponse) as exc:
        logger.warning("Embedding document %s failed: %s", document_id, exc)
        return _fail(document, generation, "embedding_unavailable", EMBEDDING_FAILED, started)

    search_plan.ensure_model_index(spec)
    with transaction.atomic():
        document = _current(document_id, generation).select_for_update().first()
        if document is None:
            return "stale"
        # Reprocessing: the new chunks replace the old ones in this one transaction.
        DocumentChunk.objects.filter(document=document).delete()
        common = {"document": document, "organization_id": document.organization_id,
                  "owner_id": document.owner_id, "visibility": document.visibility}
        rows = DocumentChunk.objects.bulk_create(
            [
                DocumentChunk(index=chunk.index, text=chunk.text, page=chunk.page, heading=chunk.heading,
                              char_start=chunk.char_start, char_end=chunk.char_end,
                              token_count=chunk.token_count, **common)
                for chunk in chunks
            ]
        )
        DocumentChunk.objects.filter(document=document).update(
            search_vector=SearchVector("heading", weight="A", config="english")
            + SearchVector("text", weight="B", config="english")
        )
        ChunkEmbedding.objects.bulk_create(
            [
                ChunkEmbedding(chunk=row, model=spec.model, dimensions=spec.dimensions, embedding=vector, **common)
                for row, vector in zip(rows, vectors, strict=True)
            ]
        )
        elapsed = time.monotonic() - started
        Document.objects.filter(pk=document.pk).update(
            status=DocumentStatus.READY, chunks_total=len(chunks), chunks_done=len(chunks),
            embedding_model=spec.model, processed_at=timezone.now(), processing_ms=round(elapsed * 1000),
            updated_at=timezone.now(),
        )
    metrics.observe_document_ingestion(kind=document.kind, seconds=elapsed, chunks=len(chunks))
    # An organization this document carried past SEARCH_TENANT_INDEX_MIN_ROWS chunk vectors
    # gets its own index (a background build; a capped count for the others).
    search_plan.index_organization_if_grown(organization_id=document.organization_id, spec=spec)
    return "ready"


def _fail(document: Document, generation: int, code: str, message: str, started: float) -> str:
    elapsed = time.monotonic() - started
    _current(document.pk, generation).update(
        status=DocumentStatus.FAILED, error=message, error_code=code, chunks_done=0,
        processed_at=timezone.now(), processing_ms=round(elapsed * 1000), updated_at=timezone.now(),
    )
    metrics.observe_document_ingestion(kind=document.kind, seconds=elapsed, failure=code)
    return "failed"


# --- embeddings of another model (backfill, reindex) ------------------------------------


def _chunks_missing(model: str, organization_id=None):
    chunks = DocumentChunk.objects.exclude(embeddings__model=model)
    if organization_id is not None:
        chunks = chunks.filter(organization_id=organization_id)
    return chunks


def unscoped_embed_chunks(*, spec, batch_size: int = EMBED_BATCH, organization_id=None) -> int:
    """Embeds every chunk that has no vector of `spec`'s model; returns how many were
    embedded. Each batch is written in its own transaction, so a provider failure keeps
    what was done and the next run goes on from there."""
    provider = get_embedding_provider(spec)
    search_plan.ensure_model_index(spec)
    done = 0
    while True:
        chunks = list(
            _chunks_missing(spec.model, organization_id)
            .order_by("document_id", "index")
            .only("id", "document_id", "organization_id", "owner_id", "visibility", "heading", "text")[:batch_size]
        )
        if not chunks:
            return done
        vectors = provider.embed([embedded_text(chunk.heading, chunk.text) for chunk in chunks])
        with transaction.atomic():
            ChunkEmbedding.objects.bulk_create(
                [
                    ChunkEmbedding(chunk=chunk, document_id=chunk.document_id, organization_id=chunk.organization_id,
                                   owner_id=chunk.owner_id, visibility=chunk.visibility, model=spec.model,
                                   dimensions=spec.dimensions, embedding=vector)
                    for chunk, vector in zip(chunks, vectors, strict=True)
                ],
                # A chunk embedded meanwhile by another run keeps its vector.
                ignore_conflicts=True,
            )
        done += len(chunks)


def unscoped_backfill_chunks(*, spec, batch_size: int, organization_id=None) -> str:
    """embeddings_backfill receiver: the line backfill_embeddings / reindex_embeddings print."""
    embedded = unscoped_embed_chunks(spec=spec, batch_size=batch_size, organization_id=organization_id)
    remaining = _chunks_missing(spec.model, organization_id).count()
    return f"Document chunks: {embedded} embedded with {spec.model}, {remaining} remaining."


def unscoped_drop_chunk_vectors_of_other_models(*, keep_model: str) -> int:
    """embeddings_dropping receiver: chunk vectors of every other model, and their indexes."""
    models = set(ChunkEmbedding.objects.exclude(model=keep_model).values_list("model", flat=True).distinct())
    deleted, _ = ChunkEmbedding.objects.exclude(model=keep_model).delete()
    for model in models:
        search_plan.drop_model_index(model)
    return deleted
