"""The message tree without a chat provider: migration 0005 turns existing conversations into
one branch; edits through HTTP (reply: false) and activation; two edits of one message at
the same moment give two siblings and a consistent branch."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from conversations.models import Conversation, Message
from conversations.selectors import active_branch_messages
from raptorflow import jobs
from tests.concurrency import run_together
from tests.conftest import make_client

BEFORE = [("conversations", "0004_db_defaults_for_bulk_loads")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def leaf_nodes():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def url(conversation, message, action) -> str:
    return f"/api/conversations/{conversation.id}/messages/{message}/{action}"


def shown(client, conversation) -> list[str]:
    response = client.get(f"/api/conversations/{conversation.id}/messages")
    assert response.status_code == 200
    return [m["content"] for m in response.json()["results"]]


def assert_one_consistent_branch(conversation):
    """The flagged rows are exactly the path from the active leaf up to a root."""
    conversation = Conversation.objects.get(pk=conversation.pk)
    by_id = {m.id: m for m in Message.objects.filter(conversation=conversation)}
    path, node = set(), by_id[conversation.active_leaf_id]
    while node is not None:
        path.add(node.id)
        node = by_id.get(node.parent_id)
    assert {m.id for m in by_id.values() if m.on_active_branch} == path
    assert all(by_id[m.parent_id].conversation_id == conversation.id for m in by_id.values() if m.parent_id)


@pytest.mark.django_db(transaction=True)
def test_existing_flat_conversations_become_one_branch(owner, org, make_conversation):
    flat = make_conversation(title="Flat")
    empty = make_conversation(title="Empty")
    migrate(BEFORE)
    try:
        old_apps = MigrationExecutor(connection).loader.project_state(BEFORE).apps
        OldMessage = old_apps.get_model("conversations", "Message")
        OldConversation = old_apps.get_model("conversations", "Conversation")
        # Inserted out of order: the chain follows the sequence, not the insertion order.
        for sequence in (2, 1, 4, 3):
            OldMessage.objects.create(
                conversation_id=flat.pk, organization_id=org.pk, owner_id=owner.pk,
                role="user" if sequence % 2 else "assistant", content=f"message {sequence}", sequence=sequence,
            )
        OldConversation.objects.filter(pk=flat.pk).update(message_count=4)
    finally:
        migrate(leaf_nodes())

    by_sequence = {m.sequence: m for m in Message.objects.filter(conversation=flat)}
    assert by_sequence[1].parent_id is None
    assert [by_sequence[n].parent_id for n in (2, 3, 4)] == [by_sequence[n].id for n in (1, 2, 3)]
    assert all(m.on_active_branch for m in by_sequence.values())
    assert Conversation.objects.get(pk=flat.pk).active_leaf_id == by_sequence[4].id
    assert Conversation.objects.get(pk=empty.pk).active_leaf_id is None
    client = make_client(owner, org)
    assert shown(client, flat) == ["message 1", "message 2", "message 3", "message 4"]
    # The migrated branch goes on: a new message follows the last one.
    response = client.post(f"/api/conversations/{flat.id}/messages", {"role": "user", "content": "five"}, format="json")
    assert response.json()["parent_id"] == str(by_sequence[4].id)
    assert [m.content for m in active_branch_messages(flat)][-2:] == ["message 4", "five"]
    jobs.in_process_worker().wait_until_idle()


def test_edit_without_reply_adds_a_sibling_and_activate_switches(owner_client, make_conversation):
    conversation = make_conversation(messages=4)  # user, assistant, user, assistant
    question = Message.objects.get(conversation=conversation, sequence=3)

    edited = owner_client.post(url(conversation, question.id, "edit"), {"content": "message 3, again"}, format="json")

    assert edited.status_code == 201, edited.content
    body = edited.json()
    assert (body["role"], body["parent_id"], body["sequence"]) == ("user", str(question.parent_id), 5)
    assert (body["sibling_index"], body["sibling_count"]) == (1, 2)
    assert shown(owner_client, conversation) == ["message 1", "message 2", "message 3, again"]
    # The next message follows the edit.
    owner_client.post(f"/api/conversations/{conversation.id}/messages", {"role": "user", "content": "more"},
                      format="json")
    assert shown(owner_client, conversation) == ["message 1", "message 2", "message 3, again", "more"]

    back = owner_client.post(url(conversation, question.id, "activate"))
    assert back.status_code == 200
    assert shown(owner_client, conversation) == ["message 1", "message 2", "message 3", "message 4"]
    forth = owner_client.post(url(conversation, body["id"], "activate"))
    assert [m["content"] for m in forth.json()["results"]] == ["message 1", "message 2", "message 3, again", "more"]
    assert Conversation.objects.get(pk=conversation.pk).message_count == 6
    assert_one_consistent_branch(conversation)


def test_activate_of_the_shown_branch_changes_nothing(owner_client, make_conversation):
    conversation = make_conversation(messages=2)
    before = Conversation.objects.get(pk=conversation.pk)
    first = Message.objects.get(conversation=conversation, sequence=1)

    response = owner_client.post(url(conversation, first.id, "activate"))

    assert response.status_code == 200
    after = Conversation.objects.get(pk=conversation.pk)
    assert (after.active_leaf_id, after.updated_at) == (before.active_leaf_id, before.updated_at)


@pytest.mark.parametrize("body, field", [({}, "content"), ({"content": "  "}, "content"),
                                          ({"content": "x", "parent_id": None}, "parent_id")])
def test_invalid_edit_bodies_are_400(owner_client, make_conversation, body, field):
    conversation = make_conversation(messages=1)
    question = Message.objects.get(conversation=conversation)

    response = owner_client.post(url(conversation, question.id, "edit"), body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert Message.objects.filter(conversation=conversation).count() == 1


def test_edit_on_an_archived_conversation_is_409(owner_client, make_conversation):
    conversation = make_conversation(messages=1)
    Conversation.objects.filter(pk=conversation.pk).update(status="archived")
    question = Message.objects.get(conversation=conversation)

    response = owner_client.post(url(conversation, question.id, "edit"), {"content": "again"}, format="json")

    assert response.status_code == 409
    assert Message.objects.filter(conversation=conversation).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_edits_of_one_message_at_once_give_two_siblings(owner, org, make_conversation):
    conversation = make_conversation(messages=4)
    question = Message.objects.get(conversation=conversation, sequence=3)
    clients = [make_client(owner, org) for _ in range(4)]

    outcomes = run_together(
        *[
            (lambda c=client, n=index: c.post(url(conversation, question.id, "edit"), {"content": f"edit {n}"},
                                              format="json"))
            for index, client in enumerate(clients)
        ]
    )

    assert [o.status_code for o in outcomes] == [201] * 4
    siblings = Message.objects.filter(conversation=conversation, parent_id=question.parent_id).order_by("sequence")
    assert siblings.count() == 5  # the question and its four edits
    assert sorted(m.sequence for m in siblings[1:]) == [5, 6, 7, 8]
    row = Conversation.objects.get(pk=conversation.pk)
    assert row.message_count == 8
    # The edit stored last is shown; every edit sees all five versions once committed.
    assert row.active_leaf_id == siblings.last().id
    assert_one_consistent_branch(conversation)
    client = clients[0]
    branch = client.get(f"/api/conversations/{conversation.id}/messages").json()["results"]
    assert (branch[-1]["sibling_index"], branch[-1]["sibling_count"]) == (4, 5)
    jobs.in_process_worker().wait_until_idle()
