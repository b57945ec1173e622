"""The semantic half of retrieval, through the search app's selectors (the one place that
computes vector distances): the query is embedded with the model search serves, then the
caller's own vectors are searched — this conversation first, then the caller's other
conversations in the same organization."""

import logging
import uuid
from dataclasses import dataclass

from raptorflow.errors import DomainError
from search import selectors as search
from search.providers import active_spec, get_embedding_provider

logger = logging.getLogger(__name__)

# Below this cosine similarity a message is noise rather than context.
MIN_SIMILARITY = 0.3


@dataclass(frozen=True)
class SimilarMessage:
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    similarity: float
    on_active_branch: bool = True


def model_key() -> str:
    """Part of the context cache key: vectors of another model rank differently."""
    spec = active_spec()
    return f"{spec.provider}:{spec.model}:{spec.dimensions}"


@dataclass(frozen=True)
class EmbeddedQuery:
    vector: list[float]
    model: str


def embed_query(query: str) -> EmbeddedQuery | None:
    """The query's vector with the model search serves, embedded once for messages and
    documents alike; None when the provider is down (retrieval then degrades to recent
    messages: a reply must not fail because search does)."""
    if not query.strip():
        return None
    try:
        provider = get_embedding_provider()
        return EmbeddedQuery(vector=provider.embed_one(query), model=provider.model)
    except DomainError as exc:
        logger.warning("Context without semantic search: the query could not be embedded (%s)", exc.detail)
        return None


def similar_messages(
    *, user, organization, conversation, query: str, limit: int, exclude_message_ids=(),
    embedded: EmbeddedQuery | None = None,
) -> list[SimilarMessage]:
    """Up to `limit` of this conversation's closest messages and up to `limit` // 2 of the
    caller's other conversations'. Retrieval degrades to recent messages only when the
    embedding provider is down (a reply must not fail because search does)."""
    if limit <= 0 or not query.strip():
        return []
    embedded = embedded or embed_query(query)
    if embedded is None:
        return []
    common = {
        "user": user,
        "organization": organization,
        "query_vector": embedded.vector,
        "model": embedded.model,
        "min_similarity": MIN_SIMILARITY,
        "exclude_message_ids": list(exclude_message_ids),
    }
    own = search.semantic_search(conversation_id=conversation.id, limit=limit, **common)
    others = [
        hit
        for hit in search.semantic_search(limit=limit + len(own), **common)
        if hit.conversation_id != conversation.id
    ][: limit // 2]
    return [
        SimilarMessage(
            message_id=hit.message_id,
            conversation_id=hit.conversation_id,
            similarity=hit.similarity,
            on_active_branch=hit.on_active_branch,
        )
        for hit in [*own, *others]
    ]
