"""Titles of untitled conversations.

`title` is optional when a conversation is created. An untitled one (title_source null)
is titled once, after its first reply: conversations.services calls the hook point
`untitled_conversation_answered` when an assistant message is stored in it, and rag
registers the job that asks the chat provider for a short title (rag/titles.py), falling
back to the first user message when no provider is configured or it fails.

A title the person set is never overwritten: `title_set_generated` writes only while the
conversation is still untitled, in one conditional UPDATE. A rename (PATCH, which sets
title_source = user) that commits first makes it write nothing; one that comes later
simply replaces the generated title. When both run at once, the UPDATE waits for the
rename's row lock and re-checks its condition on the renamed row (READ COMMITTED), so the
person wins either way.
"""

import re
from dataclasses import dataclass

from conversations.models import Conversation, MessageRole, TitleSource
from conversations.selectors import active_branch_messages

TITLE_MAX_CHARS = 60
FALLBACK_TITLE = "New conversation"
# Quotes, a "Title:" label and trailing punctuation that models like to add.
_LABEL = re.compile(r"^\s*(title|subject)\s*:\s*", re.IGNORECASE)
_WRAPPING = "\"'`*_“”‘’«» "


def title_from_text(text: str) -> str:
    """A title of at most TITLE_MAX_CHARS characters from `text`: its first non-blank line,
    whitespace collapsed, labels and quotes taken off, cut at a word boundary."""
    line = next((line for line in (text or "").splitlines() if line.strip()), "")
    title = " ".join(_LABEL.sub("", line).split()).strip(_WRAPPING).rstrip(".:;,")
    if len(title) > TITLE_MAX_CHARS:
        cut = title[: TITLE_MAX_CHARS - 1]
        # At the last space, unless that throws most of it away (one long word).
        if " " in cut and cut.rindex(" ") >= TITLE_MAX_CHARS // 2:
            cut = cut[: cut.rindex(" ")]
        title = cut.rstrip(" .,:;-") + "…"
    return title or FALLBACK_TITLE


@dataclass(frozen=True)
class TitleInputs:
    conversation: Conversation
    question: str
    answer: str


def unscoped_title_inputs(conversation_id) -> TitleInputs | None:
    """What the title job reads: the still-untitled conversation with its first question
    and first answer on the active branch; None when it is gone or titled already.
    Unscoped: a background job acting for the conversation's owner."""
    conversation = (
        Conversation.objects.select_related("organization")
        .filter(pk=conversation_id, title_source__isnull=True)
        .first()
    )
    if conversation is None:
        return None
    question = answer = ""
    for role, content in active_branch_messages(conversation).values_list("role", "content")[:20]:
        if role == MessageRole.USER and not question:
            question = content
        elif role == MessageRole.ASSISTANT and not answer:
            answer = content
        if question and answer:
            break
    return TitleInputs(conversation=conversation, question=question, answer=answer)


def unscoped_title_set_generated(*, conversation_id, title: str) -> bool:
    """Stores a generated title if the conversation is still untitled (see the module
    docstring); True when it was stored. `updated_at` is left alone: the conversation's
    content did not change."""
    updated = Conversation.objects.filter(pk=conversation_id, title_source__isnull=True).update(
        title=title[:TITLE_MAX_CHARS], title_source=TitleSource.GENERATED
    )
    return updated == 1
