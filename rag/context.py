"""The sync core of RAG: which messages become context, and the prompt built from them.

Every read takes the caller (user, organization) explicitly and goes through
raptorflow.tenancy.scoped(), the entry point the API views use too, so context can only
ever come from the caller's own conversations in the caller's own organization — never
another organization's, never a teammate's.

Scores are in [0, 1]: a message's cosine similarity to the query (times
OTHER_CONVERSATION_WEIGHT when it comes from another of the owner's conversations), and for
the newest messages of this conversation a recency score (1.0 for the newest, RECENCY_STEP
less per step back); a message found both ways keeps the higher.
"""

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from conversations.models import Conversation, Message
from conversations.selectors import message_history
from rag import semantic, services
from rag.chat_providers import ChatMessage
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
    "Earlier messages from the user's conversations that may help, oldest first, "
    "each with its relevance from 0 to 1:"
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


@dataclass(frozen=True)
class AugmentedPrompt:
    query: str
    conversation_id: uuid.UUID
    system_prompt: str
    full_prompt: str
    messages: tuple[ContextMessage, ...]  # the context used, oldest first
    token_count: int  # estimated (rag.tokens), system prompt included
    token_budget: int

    @property
    def scores(self) -> dict[str, float]:
        return {str(m.message_id): m.score for m in self.messages}

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
    branch_of=None,
) -> RetrievedContext:
    """Recent and semantically close messages for `query`, deduplicated and ranked.
    This conversation's messages are those of its active branch, or with `branch_of` (the
    id of the message being answered) that message's own history: the path from the root
    to it. Messages on other branches are never context. `before_sequence` limits them to
    those before a given one (asking again for an earlier message sees the conversation as
    it was then)."""
    if not is_visible(conversation, user=user, organization=organization):
        raise Conversation.DoesNotExist("Conversation not visible to this caller")
    excluded = sorted(str(i) for i in exclude_message_ids)
    state = f"{conversation.message_count}:{conversation.updated_at.isoformat()}"
    retrieval = [settings.RAG_RECENT_MESSAGES, settings.RAG_SEMANTIC_MESSAGES, semantic.model_key()]
    branch = str(branch_of) if branch_of else None
    key = hashlib.sha256(json.dumps([query, excluded, before_sequence, branch, retrieval]).encode()).hexdigest()

    cached = (
        scoped(ContextCache, user=user, organization=organization)
        .filter(conversation=conversation, state=state, key=key)
        .values_list("entries", flat=True)
        .first()
    )
    if cached is not None:
        entries, from_cache = cached, True
    else:
        entries = _rank(user, organization, conversation, query, set(excluded), before_sequence, branch_of)
        services.context_cache_store(conversation=conversation, state=state, key=key, entries=entries)
        from_cache = False

    return RetrievedContext(
        query=query,
        conversation_id=conversation.id,
        agent_type=conversation.agent_type,
        messages=tuple(context_messages(user=user, organization=organization, entries=entries)),
        from_cache=from_cache,
    )


def _rank(user, organization, conversation, query, excluded: set[str], before_sequence, branch_of) -> list[dict]:
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
    their order; messages deleted since, or not the caller's, drop out."""
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
        )
        for entry in entries
        if (row := rows.get(entry["message_id"])) is not None
    ]


# --- augmentation ----------------------------------------------------------------------


def _context_line(message: ContextMessage, conversation_id, max_chars: int) -> str:
    content = message.content
    if len(content) > max_chars:
        content = content[:max_chars] + " […]"
    where = "" if message.conversation_id == conversation_id else " · other conversation"
    return f"[{message.role}{where} · relevance {message.score:.2f}] {content}"


def _full_prompt(query: str, lines: list[str]) -> str:
    if not lines:
        return query
    return "\n".join([CONTEXT_HEADER, *lines, "", QUERY_HEADER, query])


def prompt_augment(*, query: str, context: RetrievedContext, token_budget: int | None = None) -> AugmentedPrompt:
    """The agent type's system prompt and one user prompt holding the best context that fits
    the budget (RAG_PROMPT_TOKEN_BUDGET; CHAT_MAX_REPLY_TOKENS more are left for the reply)
    followed by the query. The best-scored messages are chosen first, then shown in order."""
    budget = token_budget or settings.RAG_PROMPT_TOKEN_BUDGET
    system = system_prompt(context.agent_type)
    # Estimating each part separately over-counts (one ceil per part), so the sum is a
    # safe upper bound for the assembled prompt.
    frame = "\n".join([CONTEXT_HEADER, "", QUERY_HEADER, query])
    remaining = budget - estimate_message_tokens(system) - estimate_message_tokens(frame)
    # A message takes at most a quarter of the budget.
    max_chars = min(CONTEXT_MESSAGE_MAX_CHARS, budget * CHARS_PER_TOKEN // 4)
    chosen: list[tuple[ContextMessage, str]] = []
    for message in context.messages:
        line = _context_line(message, context.conversation_id, max_chars)
        cost = estimate_tokens(line + "\n")
        if cost <= remaining:
            chosen.append((message, line))
            remaining -= cost
    chosen.sort(key=lambda pair: (pair[0].created_at, pair[0].sequence))
    full_prompt = _full_prompt(query, [line for _, line in chosen])
    return AugmentedPrompt(
        query=query,
        conversation_id=context.conversation_id,
        system_prompt=system,
        full_prompt=full_prompt,
        messages=tuple(message for message, _ in chosen),
        token_count=estimate_message_tokens(system) + estimate_message_tokens(full_prompt),
        token_budget=budget,
    )
