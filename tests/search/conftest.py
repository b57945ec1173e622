"""Fixtures of the search tests: the real local model (loaded once per session), the
default embedding settings, background jobs run eagerly, and helpers to create the
caller's conversations and messages through the ORM."""

import pytest
from django.utils import timezone

from conversations.models import Conversation, Message
from search.providers.local import LocalEmbeddingProvider


@pytest.fixture(scope="session")
def local_model():
    """all-MiniLM-L6-v2-int8 loaded once for the whole session (the provider keeps it per process)."""
    provider = LocalEmbeddingProvider()
    provider.warm_up()
    return provider


@pytest.fixture(autouse=True)
def _search_settings(settings):
    settings.BACKGROUND_JOBS_EAGER = True
    settings.CELERY_BROKER_URL = ""
    settings.EMBEDDING_PROVIDER = "local"
    settings.EMBEDDING_MODEL = ""
    settings.EMBEDDING_DIMENSIONS = 0
    settings.OPENAI_API_KEY = ""
    settings.GEMINI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    settings.PROVIDER_TIMEOUT_SECONDS = 5.0
    settings.PROVIDER_MAX_RETRIES = 2


def make_conversation(user, organization=None, title="Q4 Marketing Strategy", agent_type="strategy"):
    organization = organization or user.default_organization
    return Conversation.objects.create(
        organization=organization, owner=user, title=title, agent_type=agent_type, activity_at=timezone.now()
    )


def add_message(conversation, content, role="user"):
    """A message stored through the ORM (no automatic embedding)."""
    sequence = conversation.message_count + 1
    message = Message.objects.create(
        conversation=conversation,
        organization_id=conversation.organization_id,
        owner_id=conversation.owner_id,
        role=role,
        content=content,
        sequence=sequence,
    )
    conversation.message_count = sequence
    conversation.save(update_fields=["message_count"])
    return message


MARKETING_CORPUS = [
    "How much should we spend on ads next quarter?",
    "Let's plan the office party for Friday.",
    "Our Instagram engagement rate dropped by 12% this month.",
    "Draft three subject lines for the Black Friday email campaign.",
    "Which customer segments respond best to discount codes?",
    "The SEO audit found broken links on the pricing page.",
    "Can you summarize the competitor's new product launch?",
    "Who is bringing cake to the birthday celebration?",
]


ADS_TEXT = MARKETING_CORPUS[0]


@pytest.fixture
def conversation(owner, org):
    return make_conversation(owner, org)


@pytest.fixture
def corpus(conversation, local_model):
    """The marketing corpus as messages of the owner's conversation, embedded with the local model."""
    from search.services import embeddings_store

    messages = [
        add_message(conversation, text, role="user" if i % 2 == 0 else "assistant")
        for i, text in enumerate(MARKETING_CORPUS)
    ]
    embeddings_store(items=[(m, m.content) for m in messages], provider=local_model, on_purpose=False)
    return messages
