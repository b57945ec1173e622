"""Fixtures of the conversations tests: conversations made through the services (the same
code path as the API)."""

import pytest

from conversations.services import conversation_create, message_create


@pytest.fixture
def make_conversation(owner, org):
    def make(*, user=None, organization=None, title="Q4 Marketing Strategy", agent_type="strategy", messages=0, **kw):
        conversation = conversation_create(
            organization=organization or org, owner=user or owner, title=title, agent_type=agent_type, **kw
        )
        for number in range(1, messages + 1):
            role = "user" if number % 2 else "assistant"
            message_create(conversation=conversation, role=role, content=f"message {number}")
        return conversation

    return make


@pytest.fixture
def conversation(make_conversation):
    """The owner's conversation with two messages."""
    return make_conversation(messages=2, metadata={"client": "web"})
