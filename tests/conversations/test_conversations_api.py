"""POST/GET /api/conversations and GET/PATCH/DELETE /api/conversations/{id}."""

import pytest
from django.conf import settings

from conversations.models import Conversation, Message
from conversations.services import message_create
from raptorflow.models import AuditLog
from tests.conversations.helpers import error_fields, snapshot

NIL_UUID = "00000000-0000-0000-0000-000000000000"
CONVERSATION_FIELDS = {
    "id",
    "title",
    "title_source",
    "pinned",
    "tags",
    "agent_type",
    "status",
    "message_count",
    "metadata",
    "usage",
    "created_at",
    "updated_at",
    "last_message_at",
}


def metadata_of_size(size: int) -> dict:
    """A metadata object whose compact JSON is exactly `size` bytes."""
    overhead = len('{"k":""}')
    return {"k": "x" * (size - overhead)}


# --- create ----------------------------------------------------------------------------


def test_create_conversation_stores_it_for_the_caller(owner_client, owner, org):
    response = owner_client.post(
        "/api/conversations",
        {"title": "Q4 Marketing Strategy", "agent_type": "strategy", "metadata": {"source": "sidebar"}},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == CONVERSATION_FIELDS
    assert body["title"] == "Q4 Marketing Strategy"
    assert body["agent_type"] == "strategy"
    assert body["status"] == "active"
    assert body["message_count"] == 0
    assert body["metadata"] == {"source": "sidebar"}
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert body["last_message_at"] is None
    row = Conversation.objects.get(pk=body["id"])
    assert row.organization == org
    assert row.owner == owner
    assert row.activity_at is not None


def test_create_conversation_without_metadata_stores_an_empty_object(owner_client):
    response = owner_client.post("/api/conversations", {"title": "Brief", "agent_type": "content"}, format="json")

    assert response.status_code == 201
    assert response.json()["metadata"] == {}
    assert Conversation.objects.get(pk=response.json()["id"]).metadata == {}


@pytest.mark.parametrize("agent_type", ["strategy", "content", "research", "analytics", "general"])
def test_create_conversation_accepts_every_default_agent_type(owner_client, agent_type):
    response = owner_client.post("/api/conversations", {"title": "T", "agent_type": agent_type}, format="json")

    assert response.status_code == 201
    assert response.json()["agent_type"] == agent_type


def test_agent_types_come_from_settings(owner_client, settings):
    settings.AGENT_TYPES = ["seo"]

    accepted = owner_client.post("/api/conversations", {"title": "T", "agent_type": "seo"}, format="json")
    refused = owner_client.post("/api/conversations", {"title": "T", "agent_type": "strategy"}, format="json")

    assert accepted.status_code == 201
    assert refused.status_code == 400
    assert "agent_type" in error_fields(refused)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": None, "agent_type": "strategy"}, "title"),
        ({"title": "", "agent_type": "strategy"}, "title"),
        ({"title": "   ", "agent_type": "strategy"}, "title"),
        ({"title": "x" * 201, "agent_type": "strategy"}, "title"),
        ({"title": "T", "agent_type": "strategy", "metadata": []}, "metadata"),
        ({"title": "T"}, "agent_type"),
        ({"title": "T", "agent_type": "astrology"}, "agent_type"),
        ({"title": "T", "agent_type": "strategy", "metadata": "notes"}, "metadata"),
        ({"title": "T", "agent_type": "strategy", "metadata": metadata_of_size(16 * 1024 + 1)}, "metadata"),
        ({"title": "T", "agent_type": "strategy", "status": "archived"}, "status"),
        ({"title": "T", "agent_type": "strategy", "organization": NIL_UUID}, "organization"),
        ({"title": "T", "agent_type": "strategy", "owner": "someone"}, "owner"),
        ({"title": "T", "agent_type": "strategy", "message_count": 5}, "message_count"),
        ({"title": "T", "agent_type": "strategy", "usage": {"total_tokens": 1}}, "usage"),
        ({"title": "T", "agent_type": "strategy", "id": NIL_UUID}, "id"),
    ],
)
def test_create_conversation_rejects_bad_input_naming_the_field(owner_client, owner, body, field):
    response = owner_client.post("/api/conversations", body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"]
    assert not Conversation.objects.filter(owner=owner).exists()


def test_title_of_exactly_200_characters_is_accepted(owner_client):
    response = owner_client.post("/api/conversations", {"title": "x" * 200, "agent_type": "strategy"}, format="json")

    assert response.status_code == 201
    assert len(Conversation.objects.get(pk=response.json()["id"]).title) == 200


def test_metadata_of_exactly_16_kb_is_accepted(owner_client):
    metadata = metadata_of_size(settings.METADATA_MAX_BYTES)
    response = owner_client.post(
        "/api/conversations", {"title": "T", "agent_type": "strategy", "metadata": metadata}, format="json"
    )

    assert response.status_code == 201
    assert Conversation.objects.get(pk=response.json()["id"]).metadata == metadata


def test_create_conversation_refuses_a_non_json_body(owner_client, owner):
    response = owner_client.post("/api/conversations", "title=T&agent_type=strategy", content_type="text/plain")

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert not Conversation.objects.filter(owner=owner).exists()


def test_anonymous_caller_cannot_create_a_conversation(anon_client, db):
    response = anon_client.post("/api/conversations", {"title": "T", "agent_type": "strategy"}, format="json")

    assert response.status_code == 401
    assert not Conversation.objects.exists()


# --- list ------------------------------------------------------------------------------


def test_list_shows_the_callers_conversations_newest_activity_first(owner_client, make_conversation):
    first = make_conversation(title="first")
    second = make_conversation(title="second")
    third = make_conversation(title="third")
    # A new message makes the oldest conversation the most recently active one.
    message_create(conversation=first, role="user", content="back to this")

    response = owner_client.get("/api/conversations")

    assert response.status_code == 200
    body = response.json()
    assert [c["id"] for c in body["results"]] == [str(first.id), str(third.id), str(second.id)]
    assert body["results"][0]["message_count"] == 1
    assert body["next"] is None
    assert body["previous"] is None


def test_list_leaves_out_teammates_and_outsiders_conversations(
    owner_client, make_conversation, teammate, outsider, org
):
    mine = make_conversation(title="mine")
    make_conversation(user=teammate, organization=org, title="teammate's")
    make_conversation(user=outsider, organization=outsider.default_organization, title="outsider's")

    response = owner_client.get("/api/conversations")

    assert response.status_code == 200
    assert [c["id"] for c in response.json()["results"]] == [str(mine.id)]


def test_list_filters_by_status(owner_client, make_conversation):
    active = make_conversation(title="active")
    archived = make_conversation(title="archived")
    Conversation.objects.filter(pk=archived.pk).update(status="archived")

    archived_only = owner_client.get("/api/conversations", {"status": "archived"})
    active_only = owner_client.get("/api/conversations", {"status": "active"})

    assert [c["id"] for c in archived_only.json()["results"]] == [str(archived.id)]
    assert [c["id"] for c in active_only.json()["results"]] == [str(active.id)]


def test_list_filters_by_agent_type(owner_client, make_conversation):
    make_conversation(agent_type="strategy")
    research = make_conversation(agent_type="research")

    response = owner_client.get("/api/conversations", {"agent_type": "research"})

    assert response.status_code == 200
    assert [c["id"] for c in response.json()["results"]] == [str(research.id)]


@pytest.mark.parametrize(("param", "value"), [("status", "deleted"), ("agent_type", "astrology")])
def test_list_rejects_an_unknown_filter_value_naming_it(owner_client, make_conversation, param, value):
    make_conversation()

    response = owner_client.get("/api/conversations", {param: value})

    assert response.status_code == 400
    assert param in error_fields(response)


# --- retrieve --------------------------------------------------------------------------


def test_owner_reads_a_conversation(owner_client, conversation):
    response = owner_client.get(f"/api/conversations/{conversation.id}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == CONVERSATION_FIELDS
    assert body["id"] == str(conversation.id)
    assert body["message_count"] == 2
    assert body["metadata"] == {"client": "web"}
    assert body["last_message_at"] is not None


def test_unknown_conversation_id_is_a_json_404(owner_client, db):
    response = owner_client.get("/api/conversations/00000000-0000-0000-0000-000000000000")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_malformed_conversation_id_is_a_json_404(owner_client, db):
    response = owner_client.get("/api/conversations/not-a-uuid")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- update ----------------------------------------------------------------------------


def test_patch_changes_title_status_and_replaces_metadata_whole(owner_client, conversation):
    before = Conversation.objects.get(pk=conversation.pk)

    response = owner_client.patch(
        f"/api/conversations/{conversation.id}",
        {"title": "Q4 plan, final", "status": "archived", "metadata": {"pinned": True}},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["title"] == "Q4 plan, final"
    assert body["status"] == "archived"
    assert body["metadata"] == {"pinned": True}
    row = Conversation.objects.get(pk=conversation.pk)
    assert (row.title, row.status, row.metadata) == ("Q4 plan, final", "archived", {"pinned": True})
    assert row.updated_at > before.updated_at
    # Untouched: the counters and the activity the list is sorted by.
    assert (row.message_count, row.activity_at, row.usage) == (2, before.activity_at, before.usage)


def test_patch_with_only_a_title_leaves_the_rest(owner_client, conversation):
    response = owner_client.patch(f"/api/conversations/{conversation.id}", {"title": "Renamed"}, format="json")

    assert response.status_code == 200
    row = Conversation.objects.get(pk=conversation.pk)
    assert (row.title, row.status, row.metadata) == ("Renamed", "active", {"client": "web"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"status": "deleted"}, "status"),
        ({"metadata": ["a", "list"]}, "metadata"),
        ({"metadata": None}, "metadata"),
        ({"metadata": metadata_of_size(16 * 1024 + 1)}, "metadata"),
        ({"agent_type": "research"}, "agent_type"),
        ({"usage": {"total_tokens": 0}}, "usage"),
        ({"generation": {"provider": "openai"}}, "generation"),
        ({"message_count": 0}, "message_count"),
        ({"organization": NIL_UUID}, "organization"),
        ({"owner": NIL_UUID}, "owner"),
        ({"id": NIL_UUID}, "id"),
        ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ({"last_message_at": None}, "last_message_at"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_patch_rejects_bad_or_read_only_fields_and_changes_nothing(owner_client, conversation, body, field):
    before = snapshot(conversation)

    response = owner_client.patch(f"/api/conversations/{conversation.id}", body, format="json")

    assert response.status_code == 400
    assert field in error_fields(response)
    assert snapshot(conversation) == before


def test_patch_with_a_mix_of_valid_and_read_only_fields_applies_none(owner_client, conversation):
    before = snapshot(conversation)

    response = owner_client.patch(
        f"/api/conversations/{conversation.id}", {"title": "Renamed", "usage": {"total_tokens": 0}}, format="json"
    )

    assert response.status_code == 400
    assert set(error_fields(response)) == {"usage"}
    assert snapshot(conversation) == before


def test_put_is_not_allowed(owner_client, conversation):
    before = snapshot(conversation)

    response = owner_client.put(
        f"/api/conversations/{conversation.id}", {"title": "T", "agent_type": "strategy"}, format="json"
    )

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert snapshot(conversation) == before


# --- archived conversations ------------------------------------------------------------


def test_archived_conversation_takes_no_new_message(owner_client, conversation):
    owner_client.patch(f"/api/conversations/{conversation.id}", {"status": "archived"}, format="json")
    before = snapshot(conversation)

    response = owner_client.post(
        f"/api/conversations/{conversation.id}/messages", {"role": "user", "content": "hello?"}, format="json"
    )

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conversation_archived"
    assert "archived" in error["message"]
    assert snapshot(conversation) == before


def test_archived_conversation_can_be_made_active_again_and_then_takes_messages(owner_client, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(status="archived")

    reactivated = owner_client.patch(f"/api/conversations/{conversation.id}", {"status": "active"}, format="json")
    posted = owner_client.post(
        f"/api/conversations/{conversation.id}/messages", {"role": "user", "content": "again"}, format="json"
    )

    assert reactivated.status_code == 200
    assert reactivated.json()["status"] == "active"
    assert posted.status_code == 201
    assert posted.json()["sequence"] == 3
    assert Conversation.objects.get(pk=conversation.pk).message_count == 3


def test_archived_conversation_can_still_be_read_and_deleted(owner_client, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(status="archived")

    read = owner_client.get(f"/api/conversations/{conversation.id}/messages")
    deleted = owner_client.delete(f"/api/conversations/{conversation.id}")

    assert read.status_code == 200
    assert len(read.json()["results"]) == 2
    assert deleted.status_code == 204
    assert not Conversation.objects.filter(pk=conversation.pk).exists()


# --- delete ----------------------------------------------------------------------------


def test_delete_removes_the_conversation_and_all_its_messages(owner_client, conversation, make_conversation):
    other = make_conversation(title="keep me", messages=1)

    response = owner_client.delete(f"/api/conversations/{conversation.id}")

    assert response.status_code == 204
    assert response.content == b""
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    # No orphans anywhere, and the other conversation is intact.
    assert not Message.objects.exclude(conversation__in=Conversation.objects.all()).exists()
    assert Message.objects.filter(conversation=other).count() == 1


def test_delete_writes_an_audit_entry(owner_client, owner, org, conversation):
    owner_client.delete(f"/api/conversations/{conversation.id}")

    entry = AuditLog.objects.get(action="conversation.deleted")
    assert entry.actor_id == owner.id
    assert entry.organization_id == org.id
    assert entry.target_type == "Conversation"
    assert entry.target_id == str(conversation.id)


def test_deleted_conversation_is_gone_for_later_requests(owner_client, conversation):
    owner_client.delete(f"/api/conversations/{conversation.id}")

    assert owner_client.get(f"/api/conversations/{conversation.id}").status_code == 404
    assert owner_client.delete(f"/api/conversations/{conversation.id}").status_code == 404
