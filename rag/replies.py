"""Generating a reply: the steps of POST /api/conversations/{id}/reply, in the order that
keeps the user's message safe and the reply-token quota whole.

1. `reply_prepare` answers a retry of a finished reply (same Idempotency-Key and request)
   with that reply, and refuses the key with another request (409 idempotency_key_reused)
   or while the key's first request is still being answered (409 in_progress: its provider
   is called once). It checks the quotas, then in one transaction stores the user message
   (through conversations' message_create) and reserves the reply's largest size in reply
   tokens — a refused reservation (402) leaves nothing stored — so a provider that is
   missing, failing or slow never loses the question; then picks the providers (503 when
   none is configured) and builds the context.
2. The caller runs the providers (at once or streamed).
3. `reply_store` stores the assistant message with its read-only `generation` (provider,
   model, usage, sources, status) and adds the tokens to the conversation's usage, then
   settles the reservation with what the provider reported. Whatever happens instead, the
   caller ends with `PreparedReply.release()`, which gives back a reservation not settled.
"""

import hashlib
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from billing import quotas
from conversations.models import Conversation, ConversationStatus, GenerationStatus, Message, MessageRole
from conversations.services import (
    ARCHIVED_MESSAGE,
    KEY_REUSED_MESSAGE,
    conversation_add_usage,
    idempotent_replay,
    message_create,
    message_edit,
    request_fingerprint,
    require_user_message,
)
from rag import selectors
from rag.chat_providers import ChatProvider, chat_providers
from rag.context import AugmentedPrompt, context_retrieve, context_sources, prompt_augment, source_entry
from rag.document_context import readable_document_ids
from rag.prompts import system_prompt
from rag.tokens import estimate_message_tokens, estimate_tokens
from raptorflow.errors import Conflict, InvalidInput, NotFound
from raptorflow.tenancy import scoped

# How long a reply in progress keeps its Idempotency-Key to itself. It is given back as
# soon as the reply ends; this bounds the wait only when a process dies mid-reply.
IN_PROGRESS_LEASE_SECONDS = 300
IN_PROGRESS_MESSAGE = (
    "A reply to this Idempotency-Key is still being generated; retry in a moment to receive it."
)


def reply_idempotency_key(idempotency_key: str) -> str:
    """The assistant message's key, derived from the request's (hashed: the request's key
    may already use the column's full length)."""
    return "reply:" + hashlib.sha256(idempotency_key.encode()).hexdigest()


def reply_fingerprint(*, content: str | None, message_id, kind: str = "reply", document_ids=None) -> str:
    """The request a reply's Idempotency-Key stands for (`stream` is how it is delivered,
    not what it asks for, so it is left out). `kind` tells a reply, an edit answered at
    once and a regeneration apart; `document_ids` only when given, so earlier keys keep
    their fingerprint."""
    fields = {"content": content, "message_id": str(message_id) if message_id else None}
    if kind == "edit":
        # An edit stored without an answer under this key was another request (edit_fingerprint).
        fields["reply"] = True
    if document_ids is not None:
        fields["document_ids"] = sorted(str(i) for i in document_ids)
    return request_fingerprint(kind, **fields)


def edit_fingerprint(*, message_id, content: str, reply: bool) -> str:
    """The request of POST …/messages/{id}/edit (with or without its answer)."""
    if reply:
        return reply_fingerprint(content=content, message_id=message_id, kind="edit")
    return request_fingerprint("edit", content=content, message_id=str(message_id), reply=False)


def regenerate_target(*, user, organization, conversation, message_id) -> Message:
    """The question that the assistant message `message_id` answered: regenerating it is
    answering that question again (a sibling answer). 404 for a message not in this
    conversation (or not the caller's); 400 for one that is not an answer to a question."""
    answer = (
        scoped(Message, user=user, organization=organization).filter(conversation=conversation, id=message_id).first()
    )
    if answer is None:
        raise NotFound("No such message in this conversation.")
    if answer.role != MessageRole.ASSISTANT:
        raise InvalidInput({"message_id": ["Only an assistant message can be regenerated."]})
    question = (
        Message.objects.filter(conversation=conversation, id=answer.parent_id, role=MessageRole.USER).first()
        if answer.parent_id
        else None
    )
    if question is None:
        raise InvalidInput({"message_id": ["This message answers no user message: there is nothing to ask again."]})
    return question


@dataclass
class PreparedReply:
    conversation: Conversation
    user: object
    organization: object
    user_message: Message | None
    idempotency_key: str | None
    fingerprint: str = ""
    # Set when this Idempotency-Key already produced a reply: answer with it, call nothing.
    existing_reply: Message | None = None
    # The sources (messages and document chunks) an existing reply was given.
    existing_context: list = field(default_factory=list)
    providers: list[ChatProvider] = field(default_factory=list)
    augmented: AugmentedPrompt | None = None
    started: float = field(default_factory=time.monotonic)
    reservation: quotas.ReplyTokenReservation | None = None
    # (cache key, token) of the Idempotency-Key held while this reply is generated.
    lease: tuple[str, str] | None = None

    document_ids: list | None = None

    @property
    def context(self) -> list:
        """The numbered sources: messages and document chunks."""
        return self.augmented.sources if self.augmented else self.existing_context

    def release(self) -> None:
        """Gives back what a reply that ends without being stored still holds: its token
        reservation (settled at 0) and its Idempotency-Key. Safe to call more than once."""
        try:
            if self.reservation is not None:
                quotas.settle_reply_tokens(self.reservation, 0)
        finally:
            _release_lease(self)


def reply_prepare(
    *, user, organization, conversation: Conversation, content: str | None = None, message_id=None,
    idempotency_key: str | None = None, document_ids=None, edit_of: Message | None = None, regenerate_of=None,
) -> PreparedReply:
    """`content`: a new question after the active leaf. `message_id`: answer that user
    message again (a sibling of its answers when it has some). `edit_of` with `content`: a
    new version of that user message, then its answer. `regenerate_of`: another answer to
    the question the assistant message `regenerate_of` answered. The answer is stored under
    its question and becomes the active leaf. `document_ids` restricts the documents drawn
    on (each must be readable: else 404)."""
    if document_ids is not None:
        document_ids = readable_document_ids(user=user, organization=organization, document_ids=document_ids)
    if regenerate_of is not None:
        message_id = regenerate_target(
            user=user, organization=organization, conversation=conversation, message_id=regenerate_of
        ).id
        fingerprint = reply_fingerprint(
            content=None, message_id=regenerate_of, kind="regenerate", document_ids=document_ids
        )
    elif edit_of is not None:
        require_user_message(edit_of)
        fingerprint = reply_fingerprint(content=content, message_id=edit_of.id, kind="edit", document_ids=document_ids)
    else:
        fingerprint = reply_fingerprint(content=content, message_id=message_id, document_ids=document_ids)
    prepared = PreparedReply(
        conversation=conversation,
        user=user,
        organization=organization,
        user_message=None,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        document_ids=document_ids,
    )
    if idempotency_key is not None:
        replayed = _replay(prepared)
        if replayed is not None:
            return replayed
        replayed = _take_lease(prepared)
        if replayed is not None:
            return replayed
    try:
        _start(prepared, content=content, message_id=message_id, edit_of=edit_of)
    except BaseException:
        prepared.release()
        raise
    return prepared


def _start(prepared: PreparedReply, *, content: str | None, message_id, edit_of: Message | None = None) -> None:
    user, organization, conversation = prepared.user, prepared.organization, prepared.conversation
    if conversation.status == ConversationStatus.ARCHIVED:
        raise Conflict(ARCHIVED_MESSAGE, code="conversation_archived")

    # Cheap checks first; the reservation below is what holds under concurrency.
    quotas.require_reply_tokens(organization)
    user_message = None
    if message_id is not None:
        user_message = _existing_user_message(user, organization, conversation, message_id)
    elif prepared.idempotency_key is not None:
        # A retry whose first attempt stored the question but got no answer (the provider
        # failed): answer that question, stored once.
        asked = (
            scoped(Message, user=user, organization=organization)
            .filter(conversation=conversation, idempotency_key=prepared.idempotency_key)
            .first()
        )
        user_message = idempotent_replay(asked, prepared.fingerprint) if asked is not None else None
    quotas.require_messages(organization, 1 if user_message is not None else 2)

    query = user_message.content if user_message is not None else content
    prompt_tokens = estimate_message_tokens(system_prompt(conversation.agent_type)) + estimate_message_tokens(query)
    with transaction.atomic():
        if user_message is None and edit_of is not None:
            user_message, _ = message_edit(
                conversation=conversation,
                message=edit_of,
                content=content,
                idempotency_key=prepared.idempotency_key,
                fingerprint=prepared.fingerprint,
            )
        elif user_message is None:
            user_message, _ = message_create(
                conversation=conversation,
                role=MessageRole.USER,
                content=content,
                idempotency_key=prepared.idempotency_key,
                fingerprint=prepared.fingerprint,
            )
        # The largest reply the provider may send (CHAT_MAX_REPLY_TOKENS) plus the prompt;
        # in the question's transaction, so a refusal stores nothing.
        prepared.reservation = quotas.reserve_reply_tokens(
            organization, settings.CHAT_MAX_REPLY_TOKENS + prompt_tokens
        )
    prepared.user_message = user_message

    prepared.providers = chat_providers(selectors.chat_api_keys(organization=organization))
    context = context_retrieve(
        user=user,
        organization=organization,
        conversation=conversation,
        query=user_message.content,
        exclude_message_ids=[user_message.id],
        # The question's own history, whichever branch was shown when it was asked.
        branch_of=user_message.id,
        document_ids=prepared.document_ids,
    )
    prepared.augmented = prompt_augment(query=user_message.content, context=context)
    # The context made the prompt longer than first counted: hold that too.
    quotas.extend_reply_tokens(prepared.reservation, prepared.augmented.token_count - prompt_tokens)
    prepared.started = time.monotonic()


def _replay(prepared: PreparedReply) -> PreparedReply | None:
    """The reply this Idempotency-Key already produced, if any (with its user message and
    the context it used), so a retry answers the same and creates nothing. A message under
    the reply's key that is not a reply of this request is a 409, never replayed."""
    visible = scoped(Message, user=prepared.user, organization=prepared.organization).filter(
        conversation=prepared.conversation
    )
    reply = visible.filter(idempotency_key=reply_idempotency_key(prepared.idempotency_key)).first()
    if reply is None:
        return None
    if reply.generation is None:
        # Stored through POST …/messages under a key shaped like a reply's.
        raise Conflict(KEY_REUSED_MESSAGE, code="idempotency_key_reused")
    idempotent_replay(reply, prepared.fingerprint)
    user_message = visible.filter(id=reply.generation.get("reply_to")).first()
    if user_message is None:
        return None
    prepared.user_message = user_message
    prepared.existing_reply = reply
    prepared.existing_context = context_sources(
        user=prepared.user, organization=prepared.organization, entries=reply.generation.get("sources", [])
    )
    return prepared


def _key_hash(conversation_id, idempotency_key: str) -> str:
    return hashlib.sha256(f"{conversation_id}:{idempotency_key}".encode()).hexdigest()


def stream_attach_key(conversation_id, idempotency_key: str) -> str:
    """Cache key of the streamed reply generating under this Idempotency-Key (rag.reply_runner)."""
    return "reply-stream:" + _key_hash(conversation_id, idempotency_key)


def stream_in_progress(*, conversation: Conversation, idempotency_key: str, fingerprint: str) -> str | None:
    """The id of the streamed reply this Idempotency-Key started and that is still being
    generated, for a retry to attach to; None when there is none. Another request under the
    key is a 409 idempotency_key_reused."""
    entry = cache.get(stream_attach_key(conversation.pk, idempotency_key))
    if not entry:
        return None
    if entry["fingerprint"] != fingerprint:
        raise Conflict(KEY_REUSED_MESSAGE, code="idempotency_key_reused")
    return entry["reply_id"]


class ReplyInProgress(Conflict):
    """409 in_progress: the Idempotency-Key's first request is still being answered."""

    def __init__(self, prepared: "PreparedReply"):
        super().__init__(IN_PROGRESS_MESSAGE, code="in_progress")
        self.prepared = prepared


def _take_lease(prepared: PreparedReply) -> PreparedReply | None:
    """Holds the Idempotency-Key while this request generates its reply, so concurrent
    retries call no provider: they get the finished reply, or 409 in_progress until it is
    stored. cache.add is atomic (Redis SET NX; the database cache's INSERT on its primary
    key), shared by every instance."""
    key = "reply-in-progress:" + _key_hash(prepared.conversation.pk, prepared.idempotency_key)
    token = uuid.uuid4().hex
    if not cache.add(key, token, IN_PROGRESS_LEASE_SECONDS):
        replayed = _replay(prepared)
        if replayed is not None:
            return replayed
        raise ReplyInProgress(prepared)
    prepared.lease = (key, token)
    # The first request may have stored its reply and let go of the key just before.
    try:
        replayed = _replay(prepared)
    except BaseException:
        _release_lease(prepared)
        raise
    if replayed is not None:
        _release_lease(prepared)
    return replayed


def _release_lease(prepared: PreparedReply) -> None:
    if prepared.lease is None:
        return
    key, token = prepared.lease
    prepared.lease = None
    # Only our own: after an expiry the key may belong to another request by now.
    if cache.get(key) == token:
        cache.delete(key)


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


def reply_store(
    *,
    prepared: PreparedReply,
    text: str,
    provider: str,
    model: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    status: str = GenerationStatus.COMPLETE,
    error_code: str | None = None,
    error: str | None = None,
) -> Message:
    """Stores the assistant message and its generation. Without usage from the provider (a
    stream cut short) the tokens are estimated and marked so. The token reservation is
    settled with these tokens once they are committed (released if a retry stored the
    reply first)."""
    estimated = prompt_tokens is None or completion_tokens is None
    if estimated:
        prompt_tokens = prepared.augmented.token_count
        completion_tokens = estimate_tokens(text)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "estimated": estimated,
    }
    response_time_ms = round((time.monotonic() - prepared.started) * 1000)
    generation = {
        "reply_to": str(prepared.user_message.id),
        "provider": provider,
        "model": model,
        "usage": usage,
        "response_time_ms": response_time_ms,
        "sources": [source_entry(source) for source in prepared.augmented.sources],
        "status": str(status),
    }
    if status != GenerationStatus.COMPLETE:
        generation["error"] = {
            "code": error_code or "reply_interrupted",
            "message": error or "The reply was interrupted.",
        }
    key = reply_idempotency_key(prepared.idempotency_key) if prepared.idempotency_key else None
    with transaction.atomic():
        message, created = message_create(
            conversation=prepared.conversation,
            role=MessageRole.ASSISTANT,
            content=text,
            # The client's view of the reply keeps its response time (SPEC §4).
            metadata={"response_time_ms": response_time_ms},
            generation=generation,
            idempotency_key=key,
            fingerprint=prepared.fingerprint,
            # Room for the answer was checked before the question was stored: a reply the
            # provider already produced is never refused.
            enforce_quota=False,
            # Under its question (a sibling of earlier answers to it), as the active leaf.
            parent_id=prepared.user_message.id,
        )
        if created:
            conversation_add_usage(
                conversation=prepared.conversation, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
    # After the commit, so a rollback above leaves the reservation to release().
    if prepared.reservation is not None:
        quotas.settle_reply_tokens(prepared.reservation, usage["total_tokens"] if created else 0)
    return message
