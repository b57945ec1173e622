"""The documents half of RAG context: chunks of the caller's readable documents close to the
question, found by the knowledge base's hybrid search (documents.selectors.rank_chunks:
vector and full text fused), ranked with the conversation's messages in one token budget by
rag.context.

Every read goes through raptorflow.tenancy.scoped() with the caller, at retrieval and again
when cached entries are turned back into chunks: a document made private by a teammate, or
deleted, since the context was cached never reaches a prompt. A chunk's score is its cosine
similarity to the question.
"""

import logging
import uuid
from dataclasses import dataclass

from django.conf import settings

from documents.models import DocumentChunk
from documents.selectors import rank_chunks
from raptorflow.errors import NotFound
from raptorflow.tenancy import scoped
from search.selectors import MODE_HYBRID

logger = logging.getLogger(__name__)

# Below this cosine similarity a chunk is noise rather than a source.
MIN_SIMILARITY = 0.25
SNIPPET_CHARS = 200


@dataclass(frozen=True)
class ContextChunk:
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    title: str
    page: int | None
    heading: str
    text: str
    score: float
    similarity: float | None
    number: int = 0  # its [n] in the prompt, once chosen
    source: str = "document"

    kind = "document"

    @property
    def snippet(self) -> str:
        text = " ".join(self.text.split())
        return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


def relevant_chunks(
    *, user, organization, query: str, query_vector, model: str, document_ids=None
) -> list[ContextChunk]:
    """The best chunks for `query` (one statement: documents.selectors.rank_chunks), scored
    by their cosine similarity, ready for the prompt: a cold retrieval reads no chunk twice."""
    limit = settings.RAG_DOCUMENT_CHUNKS
    if limit <= 0 or query_vector is None or not query.strip():
        return []
    hits, _ = rank_chunks(
        user=user, organization=organization, query=query, query_vector=query_vector, model=model, limit=limit,
        mode=MODE_HYBRID, document_ids=document_ids, min_similarity=MIN_SIMILARITY,
    )
    return [
        ContextChunk(
            chunk_id=hit.chunk_id, document_id=hit.document_id, title=hit.title, page=hit.page, heading=hit.heading,
            text=hit.text, score=round(hit.similarity, 4), similarity=round(hit.similarity, 4),
        )
        for hit in hits
    ]


def chunk_entry(chunk: ContextChunk) -> dict:
    """What the context cache keeps of a chunk (context_chunks reads it back, re-scoped)."""
    return {"chunk_id": str(chunk.chunk_id), "score": chunk.score, "similarity": chunk.similarity, "kind": "document"}


def context_chunks(*, user, organization, entries: list[dict]) -> list[ContextChunk]:
    """ContextChunks for stored entries, in their order; chunks the caller can no longer
    read (deleted, made private by their uploader) drop out."""
    ids = [entry["chunk_id"] for entry in entries if "chunk_id" in entry]
    if not ids:
        return []
    rows = {
        str(row["id"]): row
        for row in scoped(DocumentChunk, user=user, organization=organization)
        .filter(id__in=ids)
        .values("id", "document_id", "document__title", "page", "heading", "text")
    }
    return [
        ContextChunk(
            chunk_id=row["id"],
            document_id=row["document_id"],
            title=row["document__title"],
            page=row["page"],
            heading=row["heading"],
            text=row["text"],
            score=entry["score"],
            similarity=entry.get("similarity"),
            number=entry.get("number", 0),
        )
        for entry in entries
        if "chunk_id" in entry and (row := rows.get(entry["chunk_id"])) is not None
    ]


def readable_documents_state(*, user, organization) -> str:
    """Part of the context cache's state: context cached before a readable document
    changed (uploaded, processed, re-shared, deleted) is not reused. Starts with the count
    of readable documents ("0:" when there is none: no chunk search at all)."""
    from django.db.models import Count, Max

    from documents.models import Document

    state = scoped(Document, user=user, organization=organization).aggregate(n=Count("id"), at=Max("updated_at"))
    return f"{state['n']}:{state['at'].isoformat() if state['at'] else ''}"


def has_documents(state: str) -> bool:
    return not state.startswith("0:")


def readable_document_ids(*, user, organization, document_ids) -> list:
    """`document_ids` deduplicated, or NotFound (404) when one is not readable by the
    caller: ids in a body are scoped like ids in a URL."""
    from documents.models import Document

    wanted = sorted({str(document_id) for document_id in document_ids})
    if scoped(Document, user=user, organization=organization).filter(id__in=wanted).count() != len(wanted):
        raise NotFound("No such document.")
    return wanted
