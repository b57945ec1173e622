"""Generating a reply: the steps of POST /api/conversations/{id}/reply, in the order that
keeps the user's message safe.

1. `reply_prepare` checks the quotas first (reply tokens left, room for the question and
   the answer), so a refused request writes nothing; then stores the user message
   (through conversations' message_create, honouring the Idempotency-Key), so a provider
   that is missing, failing or slow never loses it; then picks the providers (503 when
   none is configured) and builds the context.
2. The caller runs the providers (at once or streamed).
3. `reply_store` stores the assistant message with what produced it, adds the tokens to the
   conversation's usage and to the organization's quota — all in one transaction.
"""

import hashlib
import time
from dataclasses import dataclass, field

from django.db import transaction

from billing import quotas
from conversations.models import Conversation, ConversationStatus, Message, MessageRole
from conversations.services import ARCHIVED_MESSAGE, conversation_add_usage, message_create
from rag import selectors
from rag.chat_providers import ChatProvider, chat_providers
from rag.context import AugmentedPrompt, ContextMessage, context_messages, context_retrieve, prompt_augment
from rag.tokens import estimate_tokens
from raptorflow.errors import Conflict, InvalidInput, NotFound
from raptorflow.tenancy import scoped


def reply_idempotency_key(idempotency_key: str) -> str:
    """The assistant message's key, derived from the request's (hashed: the request's key
    may already use the column's full length)."""
    return "reply:" + hashlib.sha256(idempotency_key.encode()).hexdigest()


@dataclass
class PreparedReply:
    conversation: Conversation
    user: object
    organization: object
    user_message: Message
    idempotency_key: str | None
    # Set when this Idempotency-Key already produced a reply: answer with it, call nothing.
    existing_reply: Message | None = None
    existing_context: list[ContextMessage] = field(default_factory=list)
    providers: list[ChatProvider] = field(default_factory=list)
    augmented: AugmentedPrompt | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def context(self) -> list[ContextMessage]:
        return list(self.augmented.messages) if self.augmented else self.existing_context


def reply_prepare(
    *, user, organization, conversation: Conversation, content: str | None = None, message_id=None,
    idempotency_key: str | None = None,
) -> PreparedReply:
    if idempotency_key is not None:
        replayed = _replay(user, organization, conversation, idempotency_key)
        if replayed is not None:
            return replayed
    if conversation.status == ConversationStatus.ARCHIVED:
        raise Conflict(ARCHIVED_MESSAGE, code="conversation_archived")

    quotas.require_reply_tokens(organization)
    if message_id is not None:
        user_message = _existing_user_message(user, organization, conversation, message_id)
        quotas.require_messages(organization, 1)
    else:
        quotas.require_messages(organization, 2)
        user_message, _ = message_create(
            conversation=conversation, role=MessageRole.USER, content=content, idempotency_key=idempotency_key
        )
    prepared = PreparedReply(
        conversation=conversation,
        user=user,
        organization=organization,
        user_message=user_message,
        idempotency_key=idempotency_key,
    )
    prepared.providers = chat_providers(selectors.chat_api_keys(organization=organization))
    context = context_retrieve(
        user=user,
        organization=organization,
        conversation=conversation,
        query=user_message.content,
        exclude_message_ids=[user_message.id],
        before_sequence=user_message.sequence,
    )
    prepared.augmented = prompt_augment(query=user_message.content, context=context)
    prepared.started = time.monotonic()
    return prepared


def _replay(user, organization, conversation, idempotency_key: str) -> PreparedReply | None:
    """The reply this Idempotency-Key already produced, if any (with its user message and
    the context it used), so a retry answers the same and creates nothing."""
    visible = scoped(Message, user=user, organization=organization).filter(conversation=conversation)
    reply = visible.filter(idempotency_key=reply_idempotency_key(idempotency_key)).first()
    if reply is None:
        return None
    user_message = visible.filter(id=reply.metadata.get("reply_to")).first()
    if user_message is None:
        return None
    return PreparedReply(
        conversation=conversation,
        user=user,
        organization=organization,
        user_message=user_message,
        idempotency_key=idempotency_key,
        existing_reply=reply,
        existing_context=context_messages(
            user=user, organization=organization, entries=reply.metadata.get("context", [])
        ),
    )


def _existing_user_message(user, organization, conversation, message_id) -> Message:
    # Scoped like an id in the URL: not found and not yours are the same 404.
    message = (
        scoped(Message, user=user, organization=organization).filter(conversation=conversation, id=message_id).first()
    )
    if message is None:
        raise NotFound("No such message in this conversation.")
    if message.role != MessageRole.USER:
        raise InvalidInput({"message_id": ["Must be a user message of this conversation."]})
    return message


@transaction.atomic
def reply_store(
    *,
    prepared: PreparedReply,
    text: str,
    provider: str,
    model: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    incomplete: bool = False,
    error: str | None = None,
) -> Message:
    """Stores the assistant message. Without usage from the provider (a stream cut short)
    the tokens are estimated and marked so."""
    estimated = prompt_tokens is None or completion_tokens is None
    if estimated:
        prompt_tokens = prepared.augmented.token_count
        completion_tokens = estimate_tokens(text)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if estimated:
        usage["estimated"] = True
    metadata = {
        "reply_to": str(prepared.user_message.id),
        "provider": provider,
        "model": model,
        "response_time_ms": round((time.monotonic() - prepared.started) * 1000),
        "usage": usage,
        "context": [
            {"message_id": str(m.message_id), "score": m.score, "similarity": m.similarity, "source": m.source}
            for m in prepared.augmented.messages
        ],
        "prompt_tokens_estimated": prepared.augmented.token_count,
    }
    if incomplete:
        metadata["incomplete"] = True
        metadata["error"] = error or "The reply was interrupted."
    key = reply_idempotency_key(prepared.idempotency_key) if prepared.idempotency_key else None
    message, created = message_create(
        conversation=prepared.conversation,
        role=MessageRole.ASSISTANT,
        content=text,
        metadata=metadata,
        idempotency_key=key,
        # Room for the answer was checked before the question was stored: a reply the
        # provider already produced is never refused.
        enforce_quota=False,
    )
    if created:
        conversation_add_usage(
            conversation=prepared.conversation, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
        quotas.record_reply_tokens(prepared.organization, usage["total_tokens"])
    return message
