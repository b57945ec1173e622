"""POST/GET /api/conversations/{id}/messages and GET .../messages/recent, and the
message_create / conversation_add_usage services other apps call."""

from datetime import UTC, datetime

import pytest
from django.conf import settings

from billing.models import Usage
from conversations import services
from conversations.models import Conversation, Message
from raptorflow.errors import Conflict
from search.models import MessageEmbedding
from tests.conversations.helpers import error_fields, snapshot

MESSAGE_FIELDS = {
    "id", "conversation_id", "role", "content", "metadata", "generation", "feedback", "sequence", "created_at",
    # The message tree (tests/conversations/test_branches.py)
    "parent_id", "sibling_ids", "sibling_index", "sibling_count", "on_active_branch",
}


def post_message(client, conversation, body=None, **headers):
    body = body if body is not None else {"role": "user", "content": "What should be our Q4 focus?"}
    return client.post(f"/api/conversations/{conversation.id}/messages", body, format="json", headers=headers)


# --- create ----------------------------------------------------------------------------


def test_post_message_stores_it_with_the_next_sequence(owner_client, conversation, owner, org):
    response = post_message(
        owner_client, conversation, {"role": "user", "content": "What next?", "metadata": {"lang": "en"}}
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == MESSAGE_FIELDS
    assert body["generation"] is None
    assert body["conversation_id"] == str(conversation.id)
    assert (body["role"], body["content"], body["metadata"], body["sequence"]) == (
        "user",
        "What next?",
        {"lang": "en"},
        3,
    )
    message = Message.objects.get(pk=body["id"])
    assert (message.organization, message.owner, message.sequence) == (org, owner, 3)
    row = Conversation.objects.get(pk=conversation.pk)
    assert row.message_count == 3 == Message.objects.filter(conversation=conversation).count()
    assert row.last_message_at == message.created_at
    assert row.activity_at == message.created_at


@pytest.mark.parametrize("role", ["user", "assistant", "system"])
def test_post_message_accepts_every_role(owner_client, make_conversation, role):
    conversation = make_conversation()

    response = post_message(owner_client, conversation, {"role": role, "content": "hi"})

    assert response.status_code == 201
    assert Message.objects.get(pk=response.json()["id"]).role == role


def test_message_content_keeps_its_whitespace(owner_client, make_conversation):
    conversation = make_conversation()
    content = "  indented code:\n\n    x = 1\n"

    response = post_message(owner_client, conversation, {"role": "user", "content": content})

    assert response.status_code == 201
    assert Message.objects.get(pk=response.json()["id"]).content == content


def test_message_of_exactly_the_maximum_length_is_accepted(owner_client, make_conversation):
    conversation = make_conversation()

    response = post_message(owner_client, conversation, {"role": "user", "content": "x" * settings.MESSAGE_MAX_CHARS})

    assert response.status_code == 201
    assert len(Message.objects.get(pk=response.json()["id"]).content) == 32000


def test_message_maximum_length_comes_from_settings(owner_client, make_conversation, settings):
    settings.MESSAGE_MAX_CHARS = 10
    conversation = make_conversation()

    accepted = post_message(owner_client, conversation, {"role": "user", "content": "x" * 10})
    refused = post_message(owner_client, conversation, {"role": "user", "content": "x" * 11})

    assert accepted.status_code == 201
    assert refused.status_code == 400
    assert "content" in error_fields(refused)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "hi"}, "role"),
        ({"role": "robot", "content": "hi"}, "role"),
        ({"role": "user"}, "content"),
        ({"role": "user", "content": ""}, "content"),
        ({"role": "user", "content": " \n\t "}, "content"),
        ({"role": "user", "content": None}, "content"),
        ({"role": "user", "content": "x" * 32001}, "content"),
        ({"role": "user", "content": "hi", "metadata": "fast"}, "metadata"),
        ({"role": "user", "content": "hi", "metadata": {"k": "x" * (16 * 1024)}}, "metadata"),
        ({"role": "user", "content": "hi", "sequence": 1}, "sequence"),
        ({"role": "user", "content": "hi", "id": "00000000-0000-0000-0000-000000000000"}, "id"),
        (
            {"role": "user", "content": "hi", "conversation_id": "00000000-0000-0000-0000-000000000000"},
            "conversation_id",
        ),
        ({"role": "user", "content": "hi", "idempotency_key": "k"}, "idempotency_key"),
        ({"role": "user", "content": "hi", "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
    ],
)
def test_post_message_rejects_bad_input_naming_the_field(owner_client, conversation, body, field):
    before = snapshot(conversation)

    response = post_message(owner_client, conversation, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert field in error_fields(response)
    assert snapshot(conversation) == before


def first_of_next_month_utc() -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)


def messages_used(organization) -> int:
    return sum(Usage.objects.filter(organization=organization).values_list("messages", flat=True))


def test_post_message_past_the_quota_is_402_and_writes_nothing(owner_client, conversation, org, settings):
    # The conversation's two messages used the whole (free plan) quota.
    settings.FREE_PLAN_MESSAGES = 2
    before = snapshot(conversation)

    response = post_message(owner_client, conversation)

    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["code"], error["limit"], error["quota"]) == ("quota_exceeded", 2, "messages")
    assert datetime.fromisoformat(error["resets_at"]) == first_of_next_month_utc()
    assert snapshot(conversation) == before
    assert messages_used(org) == 2


def test_posting_a_message_reserves_one_message_of_the_organizations_quota(
    owner_client, conversation, org, outsider, settings
):
    settings.FREE_PLAN_MESSAGES = 3
    assert messages_used(org) == 2

    assert post_message(owner_client, conversation).status_code == 201

    assert messages_used(org) == 3
    assert messages_used(outsider.default_organization) == 0
    # That was the last one of the period.
    assert post_message(owner_client, conversation).status_code == 402


@pytest.fixture
def eager_local_embeddings(settings):
    """Background jobs run synchronously when the transaction commits, with the real local
    embedding model."""
    settings.BACKGROUND_JOBS_EAGER = True
    settings.CELERY_BROKER_URL = ""
    settings.EMBEDDING_PROVIDER = "local"
    settings.EMBEDDING_MODEL = ""
    settings.EMBEDDING_DIMENSIONS = 0


def test_a_posted_message_is_embedded_once_its_transaction_commits(
    owner_client, conversation, eager_local_embeddings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_message(owner_client, conversation)

    assert response.status_code == 201
    embedding = MessageEmbedding.objects.get(message_id=response.json()["id"])
    assert (embedding.conversation_id, embedding.organization_id, embedding.owner_id) == (
        conversation.id,
        conversation.organization_id,
        conversation.owner_id,
    )
    assert embedding.dimensions == len(embedding.embedding) > 0
    # Only the new message: the conversation's earlier ones were stored without a commit.
    assert MessageEmbedding.objects.count() == 1


def test_a_posted_message_is_not_embedded_before_its_transaction_commits(
    owner_client, conversation, eager_local_embeddings
):
    # Inside the test's transaction, on-commit callbacks never run.
    response = post_message(owner_client, conversation)

    assert response.status_code == 201
    assert Message.objects.filter(pk=response.json()["id"]).exists()
    assert not MessageEmbedding.objects.exists()


def test_refused_message_schedules_no_embedding(
    owner_client, conversation, settings, eager_local_embeddings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert post_message(owner_client, conversation, {"role": "user", "content": ""}).status_code == 400
        settings.FREE_PLAN_MESSAGES = 2
        assert post_message(owner_client, conversation).status_code == 402
        Conversation.objects.filter(pk=conversation.pk).update(status="archived")
        assert post_message(owner_client, conversation).status_code == 409

    assert callbacks == []
    assert not MessageEmbedding.objects.exists()


# --- Idempotency-Key -------------------------------------------------------------------


def test_repeated_idempotency_key_returns_the_first_message_and_creates_nothing(owner_client, make_conversation):
    conversation = make_conversation()

    first = post_message(owner_client, conversation, **{"Idempotency-Key": "send-42"})
    repeat = post_message(owner_client, conversation, **{"Idempotency-Key": "send-42"})

    assert first.status_code == 201
    assert repeat.status_code == 200
    assert repeat.json() == first.json()
    assert Message.objects.filter(conversation=conversation).count() == 1
    assert Conversation.objects.get(pk=conversation.pk).message_count == 1


@pytest.mark.parametrize(
    "second_body",
    [
        {"role": "user", "content": "Something else entirely"},
        {"role": "assistant", "content": "What should be our Q4 focus?"},
        {"role": "user", "content": "What should be our Q4 focus?", "metadata": {"lang": "en"}},
        {"role": "user", "content": "What should be our Q4 focus? "},
    ],
)
def test_idempotency_key_reused_with_another_body_is_409_and_stores_nothing(
    owner_client, make_conversation, org, second_body
):
    conversation = make_conversation()
    first = post_message(owner_client, conversation, **{"Idempotency-Key": "send-43"})

    reused = post_message(owner_client, conversation, second_body, **{"Idempotency-Key": "send-43"})

    assert (first.status_code, reused.status_code) == (201, 409)
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert [(str(id_), content) for id_, content in Message.objects.filter(conversation=conversation).values_list(
        "id", "content"
    )] == [(first.json()["id"], "What should be our Q4 focus?")]
    assert Conversation.objects.get(pk=conversation.pk).message_count == 1
    assert messages_used(org) == 1


def test_same_body_in_another_key_order_is_the_same_request(owner_client, make_conversation):
    conversation = make_conversation()
    body = {"role": "user", "content": "Plan?", "metadata": {"a": 1, "b": {"c": 2, "d": 3}}}
    reordered = {"metadata": {"b": {"d": 3, "c": 2}, "a": 1}, "content": "Plan?", "role": "user"}

    first = post_message(owner_client, conversation, body, **{"Idempotency-Key": "order"})
    repeat = post_message(owner_client, conversation, reordered, **{"Idempotency-Key": "order"})

    assert (first.status_code, repeat.status_code) == (201, 200)
    assert repeat.json() == first.json()


def test_a_message_stored_before_fingerprints_is_still_replayed(owner_client, make_conversation):
    conversation = make_conversation()
    first = post_message(owner_client, conversation, **{"Idempotency-Key": "legacy"})
    Message.objects.filter(pk=first.json()["id"]).update(request_fingerprint="")

    repeat = post_message(owner_client, conversation, **{"Idempotency-Key": "legacy"})

    assert repeat.status_code == 200
    assert repeat.json() == first.json()


@pytest.mark.parametrize("role", ["assistant", "user"])
def test_generation_cannot_be_posted_on_a_message(owner_client, make_conversation, role):
    conversation = make_conversation()
    forged = {"provider": "openai", "model": "gpt", "usage": {"prompt_tokens": 0, "completion_tokens": 0}}

    response = post_message(owner_client, conversation, {"role": role, "content": "hi", "generation": forged})

    assert response.status_code == 400
    assert "generation" in error_fields(response)
    assert not Message.objects.filter(conversation=conversation).exists()


def test_idempotent_repeat_is_not_counted_against_the_quota(owner_client, make_conversation, org, settings):
    conversation = make_conversation()
    settings.FREE_PLAN_MESSAGES = 1

    first = post_message(owner_client, conversation, **{"Idempotency-Key": "once"})
    # The quota is used up, yet the repeat is answered: it stores nothing new.
    repeat = post_message(owner_client, conversation, **{"Idempotency-Key": "once"})

    assert (first.status_code, repeat.status_code) == (201, 200)
    assert repeat.json() == first.json()
    assert messages_used(org) == 1


def test_different_idempotency_keys_create_different_messages(owner_client, make_conversation):
    conversation = make_conversation()

    first = post_message(owner_client, conversation, **{"Idempotency-Key": "a"})
    second = post_message(owner_client, conversation, **{"Idempotency-Key": "b"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert [m.sequence for m in Message.objects.filter(conversation=conversation).order_by("sequence")] == [1, 2]


def test_same_idempotency_key_in_another_conversation_is_a_new_message(owner_client, make_conversation):
    one, two = make_conversation(title="one"), make_conversation(title="two")

    first = post_message(owner_client, one, **{"Idempotency-Key": "shared"})
    second = post_message(owner_client, two, **{"Idempotency-Key": "shared"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]


def test_idempotent_repeat_after_archiving_still_returns_the_first_message(owner_client, make_conversation):
    conversation = make_conversation()
    first = post_message(owner_client, conversation, **{"Idempotency-Key": "retry-me"})
    Conversation.objects.filter(pk=conversation.pk).update(status="archived")

    repeat = post_message(owner_client, conversation, **{"Idempotency-Key": "retry-me"})

    assert repeat.status_code == 200
    assert repeat.json()["id"] == first.json()["id"]


def test_idempotency_key_of_255_characters_is_accepted(owner_client, make_conversation):
    conversation = make_conversation()

    response = post_message(owner_client, conversation, **{"Idempotency-Key": "k" * 255})

    assert response.status_code == 201
    assert Message.objects.get(pk=response.json()["id"]).idempotency_key == "k" * 255


@pytest.mark.parametrize("key", ["k" * 256, "   "])
def test_bad_idempotency_key_is_a_400_naming_the_header(owner_client, conversation, key):
    before = snapshot(conversation)

    response = post_message(owner_client, conversation, **{"Idempotency-Key": key})

    assert response.status_code == 400
    assert "Idempotency-Key" in error_fields(response)
    assert snapshot(conversation) == before


# --- list and recent -------------------------------------------------------------------


def test_messages_are_listed_oldest_first(owner_client, make_conversation):
    conversation = make_conversation(messages=5)

    response = owner_client.get(f"/api/conversations/{conversation.id}/messages")

    assert response.status_code == 200
    body = response.json()
    assert [m["sequence"] for m in body["results"]] == [1, 2, 3, 4, 5]
    assert [m["content"] for m in body["results"]] == [f"message {n}" for n in range(1, 6)]
    assert set(body["results"][0]) == MESSAGE_FIELDS
    assert body["next"] is None


def test_messages_of_an_empty_conversation_are_an_empty_page(owner_client, make_conversation):
    conversation = make_conversation()

    response = owner_client.get(f"/api/conversations/{conversation.id}/messages")

    assert response.status_code == 200
    assert response.json() == {"next": None, "previous": None, "results": []}


def test_messages_list_shows_only_that_conversation(owner_client, make_conversation):
    one = make_conversation(messages=2)
    make_conversation(messages=3)

    response = owner_client.get(f"/api/conversations/{one.id}/messages")

    assert {m["conversation_id"] for m in response.json()["results"]} == {str(one.id)}


def test_recent_returns_the_newest_messages_in_chronological_order(owner_client, make_conversation):
    conversation = make_conversation(messages=5)

    response = owner_client.get(f"/api/conversations/{conversation.id}/messages/recent", {"limit": 3})

    assert response.status_code == 200
    results = response.json()["results"]
    assert [m["sequence"] for m in results] == [3, 4, 5]
    assert [m["content"] for m in results] == ["message 3", "message 4", "message 5"]
    assert set(results[0]) == MESSAGE_FIELDS


def test_recent_defaults_to_ten_messages(owner_client, make_conversation):
    conversation = make_conversation(messages=12)

    response = owner_client.get(f"/api/conversations/{conversation.id}/messages/recent")

    assert [m["sequence"] for m in response.json()["results"]] == list(range(3, 13))


@pytest.mark.parametrize("limit", [1, 100])
def test_recent_accepts_limits_at_the_bounds(owner_client, make_conversation, limit):
    conversation = make_conversation(messages=3)

    response = owner_client.get(f"/api/conversations/{conversation.id}/messages/recent", {"limit": limit})

    assert response.status_code == 200
    assert [m["sequence"] for m in response.json()["results"]] == [1, 2, 3][-limit:]


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "2.5"])
def test_recent_rejects_a_limit_out_of_range_naming_it(owner_client, conversation, limit):
    response = owner_client.get(f"/api/conversations/{conversation.id}/messages/recent", {"limit": limit})

    assert response.status_code == 400
    assert "limit" in error_fields(response)


# --- services other apps call ----------------------------------------------------------


def test_message_create_returns_created_flag(make_conversation):
    conversation = make_conversation()

    message, created = services.message_create(
        conversation=conversation, role="assistant", content="Focus on retention.", metadata={"response_ms": 840}
    )
    again, created_again = services.message_create(
        conversation=conversation, role="assistant", content="ignored", idempotency_key=None
    )

    assert created is True and created_again is True
    assert (message.sequence, again.sequence) == (1, 2)
    assert Message.objects.get(pk=message.pk).metadata == {"response_ms": 840}
    # The caller's instance reflects the stored counters.
    assert conversation.message_count == 2


def test_message_create_refuses_an_archived_conversation(make_conversation):
    conversation = make_conversation(messages=1)
    Conversation.objects.filter(pk=conversation.pk).update(status="archived")

    with pytest.raises(Conflict):
        services.message_create(conversation=conversation, role="assistant", content="late reply")

    assert Message.objects.filter(conversation=conversation).count() == 1


def test_conversation_add_usage_accumulates_and_is_shown_read_only(owner_client, make_conversation):
    conversation = make_conversation()

    services.conversation_add_usage(conversation=conversation, prompt_tokens=120, completion_tokens=30)
    services.conversation_add_usage(conversation=conversation, prompt_tokens=80, completion_tokens=20)
    response = owner_client.get(f"/api/conversations/{conversation.id}")

    expected = {"prompt_tokens": 200, "completion_tokens": 50, "total_tokens": 250}
    assert response.json()["usage"] == expected
    assert Conversation.objects.get(pk=conversation.pk).usage == expected
    assert conversation.usage == expected


def test_conversation_add_usage_refuses_negative_counts(make_conversation):
    conversation = make_conversation()

    with pytest.raises(ValueError):
        services.conversation_add_usage(conversation=conversation, prompt_tokens=-1, completion_tokens=0)

    assert Conversation.objects.get(pk=conversation.pk).usage["total_tokens"] == 0
