"""The sync core of RAG: which messages become context, and the prompt built from them.

Every read takes the caller (user, organization) explicitly and goes through
raptorflow.tenancy.scoped(), the entry point the API views use too, so context can only
ever come from the caller's own conversations in the caller's own organization — never
another organization's, never a teammate's — and from the documents the caller may read
(their own, and those shared with the organization: rag.document_context).

Messages and document chunks compete for one token budget, best score first; the chosen
ones are numbered [1], [2]… in the prompt (documents first, then messages oldest first), the
system prompt asks the model to cite them so, and the reply lists them with their numbers.

Scores are in [0, 1]: a message's cosine similarity to the query (times
OTHER_CONVERSATION_WEIGHT when it comes from another of the owner's conversations), and for
the newest messages of this conversation a recency score (1.0 for the newest, RECENCY_STEP
less per step back); a message found both ways keeps the higher.
"""

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from django.conf import settings

from conversations.models import Conversation, Message
from conversations.selectors import message_history
from rag import semantic, services
from rag.chat_providers import ChatMessage
from rag.document_context import (
    ContextChunk,
    chunk_entry,
    context_chunks,
    has_documents,
    readable_documents_state,
    relevant_chunks,
)
from rag.models import ContextCache
from rag.prompts import system_prompt
from rag.tokens import CHARS_PER_TOKEN, estimate_message_tokens, estimate_tokens
from raptorflow.tenancy import is_visible, scoped

logger = logging.getLogger(__name__)

RECENCY_STEP = 0.05
RECENCY_FLOOR = 0.4
OTHER_CONVERSATION_WEIGHT = 0.9
SNIPPET_CHARS = 200
# One long message must not crowd out all the others: each is clipped to this (and to a
# quarter of the token budget) in the prompt.
CONTEXT_MESSAGE_MAX_CHARS = 2000

CONTEXT_HEADER = (
    "Numbered sources that may help — passages of the team's documents, then earlier messages from the "
    "user's conversations, oldest first — each with its relevance from 0 to 1:"
)
QUERY_HEADER = "Current message:"


@dataclass(frozen=True)
class ContextMessage:
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    role: str
    content: str
    created_at: datetime
    sequence: int
    score: float
    similarity: float | None
    source: str  # "recent", "semantic" or "recent+semantic"
    number: int = 0  # its [n] in the prompt, once chosen

    kind = "message"

    @property
    def snippet(self) -> str:
        text = " ".join(self.content.split())
        return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


@dataclass(frozen=True)
class RetrievedContext:
    query: str
    conversation_id: uuid.UUID
    agent_type: str
    messages: tuple[ContextMessage, ...]  # best first
    from_cache: bool
    chunks: tuple[ContextChunk, ...] = ()  # best first


@dataclass(frozen=True)
class AugmentedPrompt:
    query: str
    conversation_id: uuid.UUID
    system_prompt: str
    full_prompt: str
    messages: tuple[ContextMessage, ...]  # the context used, oldest first
    token_count: int  # estimated (rag.tokens), system prompt included
    token_budget: int
    chunks: tuple[ContextChunk, ...] = ()  # the document passages used, in prompt order

    @property
    def scores(self) -> dict[str, float]:
        return {str(m.message_id): m.score for m in self.messages}

    @property
    def sources(self) -> list:
        """Every source in the prompt, in the order of their numbers."""
        return sorted([*self.chunks, *self.messages], key=lambda source: source.number)

    def chat_messages(self) -> list[ChatMessage]:
        return [ChatMessage("system", self.system_prompt), ChatMessage("user", self.full_prompt)]


# --- retrieval -------------------------------------------------------------------------


def context_retrieve(
    *,
    user,
    organization,
    conversation: Conversation,
    query: str,
    exclude_message_ids=(),
    before_sequence: int | None = None,
    document_ids=None,
    branch_of=None,
) -> RetrievedContext:
    """Recent and semantically close messages for `query`, deduplicated and ranked, and
    the closest chunks of the caller's readable documents (only of `document_ids` when
    given: the caller checked they are readable). This conversation's messages are those of
    its active branch, or with `branch_of` (the id of the message being answered) that
    message's own history: the path from the root to it. Messages on other branches are
    never context. `before_sequence` limits them to those before a given one (asking again
    for an earlier message sees the conversation as it was then)."""
    if not is_visible(conversation, user=user, organization=organization):
        raise Conversation.DoesNotExist("Conversation not visible to this caller")
    excluded = sorted(str(i) for i in exclude_message_ids)
    documents = None if document_ids is None else sorted(str(i) for i in document_ids)
    documents_state = readable_documents_state(user=user, organization=organization)
    # ContextCache.state holds 64 characters: the documents' part as a short digest.
    documents_digest = hashlib.sha256(documents_state.encode()).hexdigest()[:16]
    state = f"{conversation.message_count}:{conversation.updated_at.isoformat()}:{documents_digest}"
    retrieval = [
        settings.RAG_RECENT_MESSAGES, settings.RAG_SEMANTIC_MESSAGES, settings.RAG_DOCUMENT_CHUNKS,
        semantic.model_key(),
    ]
    branch = str(branch_of) if branch_of else None
    key = hashlib.sha256(
        json.dumps([query, excluded, before_sequence, branch, retrieval, documents]).encode()
    ).hexdigest()

    cached = (
        scoped(ContextCache, user=user, organization=organization)
        .filter(conversation=conversation, state=state, key=key)
        .values_list("entries", flat=True)
        .first()
    )
    if cached is not None:
        entries, from_cache = cached, True
        chunks = context_chunks(user=user, organization=organization, entries=entries)
    else:
        embedded = semantic.embed_query(query)
        entries = _rank(
            user, organization, conversation, query, set(excluded), before_sequence, branch_of, embedded
        )
        chunks = []
        if embedded is not None and has_documents(documents_state):
            # Ranked for this caller just now: used as they are, not read again.
            chunks = relevant_chunks(
                user=user, organization=organization, query=query, query_vector=embedded.vector,
                model=embedded.model, document_ids=documents,
            )
            entries += [chunk_entry(chunk) for chunk in chunks]
        services.context_cache_store(conversation=conversation, state=state, key=key, entries=entries)
        from_cache = False

    return RetrievedContext(
        query=query,
        conversation_id=conversation.id,
        agent_type=conversation.agent_type,
        messages=tuple(context_messages(user=user, organization=organization, entries=entries)),
        from_cache=from_cache,
        chunks=tuple(chunks),
    )


def _rank(
    user, organization, conversation, query, excluded: set[str], before_sequence, branch_of, embedded
) -> list[dict]:
    own = scoped(Message, user=user, organization=organization).filter(conversation=conversation)
    own = own.filter(id__in=message_history(branch_of)) if branch_of else own.filter(on_active_branch=True)
    if before_sequence is not None:
        own = own.filter(sequence__lt=before_sequence)
    # The branch's ids (newest first): its recent messages, and the only ones of this
    # conversation that semantic hits may bring in.
    branch = [str(i) for i in own.order_by("-sequence").values_list("id", flat=True)]
    on_branch = set(branch)
    recent = [message_id for message_id in branch if message_id not in excluded]
    candidates: dict[str, dict] = {}
    for rank, message_id in enumerate(recent[: settings.RAG_RECENT_MESSAGES]):
        score = max(RECENCY_FLOOR, 1.0 - RECENCY_STEP * rank)
        candidates[str(message_id)] = _entry(message_id, score, None, "recent")

    for hit in semantic.similar_messages(
        user=user,
        organization=organization,
        conversation=conversation,
        query=query,
        limit=settings.RAG_SEMANTIC_MESSAGES,
        exclude_message_ids=excluded,
        embedded=embedded,
    ):
        message_id = str(hit.message_id)
        if (message_id not in on_branch) if hit.conversation_id == conversation.id else not hit.on_active_branch:
            continue
        weight = 1.0 if hit.conversation_id == conversation.id else OTHER_CONVERSATION_WEIGHT
        score = hit.similarity * weight
        entry = candidates.get(message_id)
        if entry is None:
            candidates[message_id] = _entry(message_id, score, hit.similarity, "semantic")
        else:
            entry.update(similarity=hit.similarity, score=max(entry["score"], score), source="recent+semantic")

    ranked = sorted(candidates.values(), key=lambda e: e["score"], reverse=True)
    for entry in ranked:
        entry["score"] = round(entry["score"], 4)
        if entry["similarity"] is not None:
            entry["similarity"] = round(entry["similarity"], 4)
    return ranked


def _entry(message_id, score: float, similarity: float | None, source: str) -> dict:
    return {"message_id": str(message_id), "score": score, "similarity": similarity, "source": source}


def context_messages(*, user, organization, entries: list[dict]) -> list[ContextMessage]:
    """ContextMessages for stored entries ({message_id, score, similarity?, source?}), in
    their order; messages deleted since, or not the caller's, drop out. Entries of
    document chunks are left to context_sources / rag.document_context."""
    entries = [entry for entry in entries if "message_id" in entry]
    ids = [entry["message_id"] for entry in entries]
    rows = {
        str(m.id): m
        for m in scoped(Message, user=user, organization=organization).filter(id__in=ids).only(
            "id", "conversation_id", "role", "content", "created_at", "sequence"
        )
    }
    return [
        ContextMessage(
            message_id=row.id,
            conversation_id=row.conversation_id,
            role=row.role,
            content=row.content,
            created_at=row.created_at,
            sequence=row.sequence,
            score=entry["score"],
            similarity=entry.get("similarity"),
            source=entry.get("source", ""),
            number=entry.get("number", 0),
        )
        for entry in entries
        if (row := rows.get(entry["message_id"])) is not None
    ]


def context_sources(*, user, organization, entries: list[dict]) -> list:
    """The messages and chunks of stored entries (a reply's `generation.sources`) that the
    caller can still read, in the order of their numbers."""
    messages = context_messages(user=user, organization=organization, entries=entries)
    chunks = context_chunks(user=user, organization=organization, entries=entries)
    return sorted([*chunks, *messages], key=lambda source: source.number)


def source_entry(source) -> dict:
    """What a reply's `generation.sources` keeps of one numbered source."""
    if isinstance(source, ContextChunk):
        return {
            "number": source.number, "kind": "document", "chunk_id": str(source.chunk_id),
            "document_id": str(source.document_id), "title": source.title, "page": source.page,
            "score": source.score, "similarity": source.similarity, "source": "document",
        }
    return {
        "number": source.number, "kind": "message", "message_id": str(source.message_id), "score": source.score,
        "similarity": source.similarity, "source": source.source,
    }


# --- augmentation ----------------------------------------------------------------------


def _context_line(message: ContextMessage, conversation_id, max_chars: int) -> str:
    content = message.content
    if len(content) > max_chars:
        content = content[:max_chars] + " […]"
    where = "" if message.conversation_id == conversation_id else " · other conversation"
    return f"[{message.role}{where} · relevance {message.score:.2f}] {content}"


def _chunk_line(chunk: ContextChunk, max_chars: int) -> str:
    text = chunk.text if len(chunk.text) <= max_chars else chunk.text[:max_chars] + " […]"
    where = f"document \"{chunk.title}\""
    if chunk.page is not None:
        where += f", page {chunk.page}"
    if chunk.heading:
        where += f", section \"{chunk.heading}\""
    return f"[{where} · relevance {chunk.score:.2f}] {text}"


def _full_prompt(query: str, lines: list[str]) -> str:
    if not lines:
        return query
    return "\n".join([CONTEXT_HEADER, *lines, "", QUERY_HEADER, query])


def prompt_augment(*, query: str, context: RetrievedContext, token_budget: int | None = None) -> AugmentedPrompt:
    """The agent type's system prompt and one user prompt holding the best context that fits
    the budget (RAG_PROMPT_TOKEN_BUDGET; CHAT_MAX_REPLY_TOKENS more are left for the reply)
    followed by the query. The best-scored sources (messages and document passages) are
    chosen first, then numbered: document passages by score, then messages in order."""
    budget = token_budget or settings.RAG_PROMPT_TOKEN_BUDGET
    cite = bool(context.messages or context.chunks)
    system = system_prompt(context.agent_type, cite=cite)
    # Estimating each part separately over-counts (one ceil per part), so the sum is a
    # safe upper bound for the assembled prompt.
    frame = "\n".join([CONTEXT_HEADER, "", QUERY_HEADER, query])
    remaining = budget - estimate_message_tokens(system) - estimate_message_tokens(frame)
    # A source takes at most a quarter of the budget.
    max_chars = min(CONTEXT_MESSAGE_MAX_CHARS, budget * CHARS_PER_TOKEN // 4)
    # Messages and document passages compete for the one budget, best score first.
    candidates = sorted(
        [*((m, _context_line(m, context.conversation_id, max_chars)) for m in context.messages),
         *((c, _chunk_line(c, max_chars)) for c in context.chunks)],
        key=lambda pair: -pair[0].score,
    )
    chosen_messages: list[tuple[ContextMessage, str]] = []
    chosen_chunks: list[tuple[ContextChunk, str]] = []
    for source, line in candidates:
        # "[n] " in front of each line: at most 5 characters for a prompt's few sources.
        cost = estimate_tokens("[nn] " + line + "\n")
        if cost <= remaining:
            (chosen_chunks if isinstance(source, ContextChunk) else chosen_messages).append((source, line))
            remaining -= cost
    chosen_messages.sort(key=lambda pair: (pair[0].created_at, pair[0].sequence))
    numbered = []
    for number, (source, line) in enumerate([*chosen_chunks, *chosen_messages], start=1):
        numbered.append((replace(source, number=number), f"[{number}] {line}"))
    full_prompt = _full_prompt(query, [line for _, line in numbered])
    if not numbered:
        system = system_prompt(context.agent_type)
    return AugmentedPrompt(
        query=query,
        conversation_id=context.conversation_id,
        system_prompt=system,
        full_prompt=full_prompt,
        messages=tuple(source for source, _ in numbered if isinstance(source, ContextMessage)),
        token_count=estimate_message_tokens(system) + estimate_message_tokens(full_prompt),
        token_budget=budget,
        chunks=tuple(source for source, _ in numbered if isinstance(source, ContextChunk)),
    )
