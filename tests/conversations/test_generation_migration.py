"""Migration 0003 moves the server-owned keys of replies stored before it out of the
client's metadata into the read-only `generation`; look-alike keys a client wrote stay
where they were."""

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("conversations", "0002_title_trigram_index_where_available")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def leaf_nodes():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def legacy_reply_metadata(question_id, context_id, **extra) -> dict:
    """What rag.replies.reply_store wrote into metadata before 0003."""
    return {
        "reply_to": str(question_id),
        "provider": "openai",
        "model": "gpt-4o-mini-2024-07-18",
        "response_time_ms": 840,
        "usage": {"prompt_tokens": 120, "completion_tokens": 8, "total_tokens": 128},
        "context": [{"message_id": str(context_id), "score": 0.95, "similarity": None, "source": "recent"}],
        "prompt_tokens_estimated": 130,
        **extra,
    }


@pytest.mark.django_db(transaction=True)
def test_reply_keys_move_from_metadata_to_generation(owner, org, make_conversation):
    conversation = make_conversation()
    migrate(BEFORE)
    try:
        OldMessage = MigrationExecutor(connection).loader.project_state(BEFORE).apps.get_model(
            "conversations", "Message"
        )
        sequence = iter(range(1, 100))

        def store(role, metadata=None):
            return OldMessage.objects.create(
                conversation_id=conversation.pk, organization_id=org.pk, owner_id=owner.pk, role=role,
                content=f"{role} message", metadata=metadata or {}, sequence=next(sequence),
            )

        earlier = store("user")
        question = store("user")
        whole = store("assistant", legacy_reply_metadata(question.id, earlier.id, client_key="kept"))
        partial = store(
            "assistant",
            legacy_reply_metadata(
                question.id, earlier.id, usage={"prompt_tokens": 120, "completion_tokens": 3, "total_tokens": 123,
                                                "estimated": True},
                incomplete=True, error="The client disconnected before the reply was complete.",
            ),
        )
        crafted = store("assistant", {"usage": "x", "context": 5, "reply_to": str(question.id)})
        look_alike = store("assistant", legacy_reply_metadata(uuid.uuid4(), earlier.id))
        answering_itself = store("assistant", legacy_reply_metadata(earlier.id, earlier.id))
        answering_itself.metadata["reply_to"] = str(answering_itself.id)
        answering_itself.save()
    finally:
        migrate(leaf_nodes())

    from conversations.models import Message

    moved = Message.objects.get(pk=whole.pk)
    assert moved.metadata == {"client_key": "kept", "response_time_ms": 840}
    assert moved.generation == {
        "reply_to": str(question.id),
        "provider": "openai",
        "model": "gpt-4o-mini-2024-07-18",
        "usage": {"prompt_tokens": 120, "completion_tokens": 8, "total_tokens": 128, "estimated": False},
        "response_time_ms": 840,
        "sources": [{"message_id": str(earlier.id), "score": 0.95, "similarity": None, "source": "recent"}],
        "status": "complete",
    }
    interrupted = Message.objects.get(pk=partial.pk)
    assert interrupted.metadata == {"response_time_ms": 840}
    assert interrupted.generation["status"] == "incomplete"
    assert interrupted.generation["usage"]["estimated"] is True
    assert interrupted.generation["error"] == {
        "code": "client_disconnected",
        "message": "The client disconnected before the reply was complete.",
    }
    # A client's own keys, or keys naming no earlier question, never become a generation.
    for untouched in (crafted, look_alike, answering_itself):
        row = Message.objects.get(pk=untouched.pk)
        assert (row.generation, row.metadata) == (None, untouched.metadata)
    assert Message.objects.get(pk=question.pk).generation is None
