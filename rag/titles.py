"""Titles for untitled conversations, generated after their first reply.

conversations calls the hook point `untitled_conversation_answered` once an assistant
message is stored in a conversation without a title; `schedule_title` (registered in
RagConfig.ready) runs `generate_title` as a background job (raptorflow.jobs), off the
request path.

The job asks the organization's chat providers (CHAT_PROVIDERS order, its own keys first)
for a title of at most 60 characters from the first question and answer, in one short
call (TITLE_MAX_TOKENS). Its tokens count against the reply-token quota like a reply's:
reserved before the call, settled with the provider's usage after it. Without a provider,
with the quota used up, or when the providers fail, the title is made from the first user
message instead — the conversation is titled either way, and nothing is retried.
conversations.titles writes it only while the conversation is still untitled, so a title
the person set (even while this job runs) is never overwritten.
"""

import logging

from celery import shared_task
from django.db import transaction

from billing import quotas
from conversations.titles import TITLE_MAX_CHARS, title_from_text, unscoped_title_inputs, unscoped_title_set_generated
from rag.tokens import estimate_message_tokens
from raptorflow import jobs, metrics
from raptorflow.errors import NotConfigured, PaymentRequired, UpstreamBadResponse, UpstreamUnavailable

logger = logging.getLogger(__name__)

# A title is a few words; the margin leaves room for models that think before answering.
TITLE_MAX_TOKENS = 64
# The first question and answer are enough to name a conversation; longer ones are cut.
TITLE_INPUT_MAX_CHARS = 2000
TITLE_PROMPT = (
    f"Write a title of at most {TITLE_MAX_CHARS} characters for the conversation below, in the language of "
    "the question. Answer with the title only: no quotes, no final period."
)


def schedule_title(conversation_id) -> None:
    jobs.run_after_commit(generate_title, str(conversation_id))


@shared_task(acks_late=True)
def generate_title(conversation_id: str) -> str:
    """Titles the conversation if it is still untitled: "generated", "from_message", or
    "skipped" (gone, titled already, or renamed meanwhile)."""
    inputs = unscoped_title_inputs(conversation_id)
    if inputs is None:
        outcome = "skipped"
    else:
        title = _title_from_provider(inputs)
        outcome = "generated" if title else "from_message"
        title = title or title_from_text(inputs.question or inputs.answer)
        if not unscoped_title_set_generated(conversation_id=conversation_id, title=title):
            outcome = "skipped"
    metrics.count_background_job(task="generate_title", outcome=outcome)
    return outcome


def _title_from_provider(inputs) -> str | None:
    # Here, not at the top: RagConfig.ready imports this module, and the SDKs the providers
    # load must not be imported while the apps are still being set up.
    from rag import selectors
    from rag.chat_providers import ChatMessage, chat_providers, complete

    organization = inputs.conversation.organization
    try:
        providers = chat_providers(selectors.chat_api_keys(organization=organization))
    except NotConfigured:
        return None
    messages = [
        ChatMessage(role="system", content=TITLE_PROMPT),
        ChatMessage(
            role="user",
            content=f"Question: {inputs.question[:TITLE_INPUT_MAX_CHARS]}\n\n"
            f"Answer: {inputs.answer[:TITLE_INPUT_MAX_CHARS]}",
        ),
    ]
    prompt_tokens = sum(estimate_message_tokens(message.content) for message in messages)
    try:
        with transaction.atomic():
            reservation = quotas.reserve_reply_tokens(organization, TITLE_MAX_TOKENS + prompt_tokens)
    except PaymentRequired:
        return None
    used = 0
    try:
        for provider in providers:
            provider.max_tokens = TITLE_MAX_TOKENS
        reply = complete(providers, messages)
        used = reply.total_tokens
    except (UpstreamUnavailable, UpstreamBadResponse) as exc:
        logger.warning("No title from the chat providers for conversation %s: %s", inputs.conversation.pk, exc)
        return None
    finally:
        quotas.settle_reply_tokens(reservation, used)
    title = title_from_text(reply.text)
    return title if reply.text.strip() else None
