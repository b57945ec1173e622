"""Races with exactly one winner, on real transactions: a rename against the title job,
and two first ratings of one reply."""

import pytest

from conversations.models import Conversation, Message
from conversations.services import conversation_create, conversation_update, message_create
from rag.titles import generate_title
from raptorflow import hooks
from tests.concurrency import run_together
from tests.conftest import make_client


@pytest.fixture(autouse=True)
def _no_background_receivers(monkeypatch, settings):
    """The race is set up by hand: no embedding job and no title job scheduled by the
    messages stored below (they would run on the worker thread beside the test)."""
    settings.OPENAI_API_KEY = settings.GEMINI_API_KEY = settings.OPENROUTER_API_KEY = ""
    monkeypatch.setattr(hooks.message_stored, "_receivers", [])
    monkeypatch.setattr(hooks.untitled_conversation_answered, "_receivers", [])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("rename_first", [True, False])
def test_a_rename_racing_the_title_job_always_wins(owner, org, rename_first):
    conversation = conversation_create(organization=org, owner=owner, agent_type="strategy")
    message_create(conversation=conversation, role="user", content="Launch ideas for runners")
    message_create(conversation=conversation, role="assistant", content="Sponsor a 10k.")

    def rename():
        conversation_update(conversation=Conversation.objects.get(pk=conversation.pk), title="Mine")

    def title_job():
        return generate_title(str(conversation.pk))

    outcomes = run_together(*((rename, title_job) if rename_first else (title_job, rename)))

    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    row = Conversation.objects.get(pk=conversation.pk)
    assert (row.title, row.title_source) == ("Mine", "user")


@pytest.mark.django_db(transaction=True)
def test_two_first_ratings_at_once_create_one_and_replace_it_once(owner, org):
    conversation = conversation_create(organization=org, owner=owner, title="T", agent_type="strategy")
    answer, _ = message_create(conversation=conversation, role="assistant", content="Sponsor a 10k.")
    url = f"/api/conversations/{conversation.id}/messages/{answer.id}/feedback"
    clients = [make_client(owner, org), make_client(owner, org)]

    statuses = run_together(
        lambda: clients[0].put(url, {"rating": "up"}, format="json").status_code,
        lambda: clients[1].put(url, {"rating": "down"}, format="json").status_code,
    )

    assert sorted(statuses) == [200, 201]
    assert Message.objects.get(pk=answer.pk).feedback_rating in {"up", "down"}
