"""The SQL a message create costs, counted through the whole stack (middleware, DRF,
authentication, throttles, the view, the service) with the embedded default: the database
cache, where the per-user rate limit is a statement of its own unless authentication counts
it (raptorflow.throttling).

A plain create (no Idempotency-Key) is at most six statements:

1. authentication and the per-user rate limit: the membership, the user's active flag, the
   valid-after times of both, the sign-in family not revoked and the access jti not revoked
   (a logout), with the rate-limit window's upsert as a WITH clause of the same statement
   (counted only when the token still works);
2. BEGIN;
3. the caller's conversation, looked up and locked at once (`SELECT … FOR UPDATE`);
4. the quota: the entitlement (subscription, plan, period) and the period's counter in one
   INSERT … ON CONFLICT DO UPDATE … WHERE used + n <= limit RETURNING;
5. the message's INSERT and the conversation's counters' UPDATE as one statement (a CTE);
6. COMMIT.

With Redis as the cache the rate limit is counted there (two or three Redis round trips), and
statement 1 is the authentication query alone: still six statements. With an
Idempotency-Key, the key's lookup under the lock and a savepoint around the insert (a
same-key race at a stricter isolation level) come on top.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import RevokedAccessToken
from billing.models import Usage
from conversations.models import Conversation, Message
from raptorflow import hooks
from raptorflow.models import RateLimitWindow
from tests.redis_server import redis_url

MAX_STATEMENTS = 6
REDIS_DB = 12  # a database of the run's own Redis no other test uses


@pytest.fixture(autouse=True)
def stored_messages(monkeypatch):
    """The ids message_stored is called with (in place of search's receiver: these tests
    commit for real, and an embedding job running beside the next test's flush would
    deadlock it)."""
    calls = []
    monkeypatch.setattr(hooks.message_stored, "_receivers", [calls.append])
    return calls


@pytest.fixture
def redis_cache_settings():
    import redis

    client = redis.Redis.from_url(redis_url(REDIS_DB))
    client.flushdb()
    yield {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url(REDIS_DB)}}
    client.flushdb()


def post_message(client, conversation, content="Draft the Q4 launch email.", **headers):
    return client.post(
        f"/api/conversations/{conversation.id}/messages", {"role": "user", "content": content}, format="json", **headers
    )


def statements_of(client, conversation, **headers):
    with CaptureQueriesContext(connection) as captured:
        response = post_message(client, conversation, **headers)
    return response, [query["sql"] for query in captured.captured_queries]


def show(statements):
    for number, sql in enumerate(statements, 1):
        print(f"{number:2}. {' '.join(sql.split())[:160]}")


@pytest.mark.django_db(transaction=True)
def test_a_message_create_is_at_most_six_statements(owner_client, make_conversation, stored_messages):
    conversation = make_conversation(messages=1)
    stored_messages.clear()

    response, statements = statements_of(owner_client, conversation)

    show(statements)
    assert response.status_code == 201, response.content
    assert len(statements) <= MAX_STATEMENTS, statements
    assert not any(sql.startswith(("SAVEPOINT", "RELEASE SAVEPOINT")) for sql in statements)
    # The statement really did all it is counted for.
    assert Message.objects.get(id=response.json()["id"]).sequence == 2
    assert Conversation.objects.get(pk=conversation.pk).message_count == 2
    assert Usage.objects.get(organization=conversation.organization_id).messages == 2
    assert RateLimitWindow.objects.get(key=f"user:{owner_client.user.pk}").count >= 1
    # The embedding hook ran once the message was committed.
    assert [str(message_id) for message_id in stored_messages] == [response.json()["id"]]


@pytest.mark.django_db(transaction=True)
def test_a_message_create_with_redis_as_the_cache_is_six_statements_too(
    owner_client, make_conversation, settings, redis_cache_settings
):
    settings.CACHES = redis_cache_settings
    conversation = make_conversation(messages=1)

    response, statements = statements_of(owner_client, conversation)

    show(statements)
    assert response.status_code == 201, response.content
    assert len(statements) <= MAX_STATEMENTS, statements
    assert not any("rate_hit" in sql for sql in statements)
    assert not RateLimitWindow.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_idempotent_create_adds_only_the_key_lookup_and_a_savepoint(owner_client, make_conversation):
    conversation = make_conversation(messages=1)

    response, statements = statements_of(owner_client, conversation, HTTP_IDEMPOTENCY_KEY="launch-email-1")
    show(statements)
    assert response.status_code == 201, response.content
    assert len(statements) <= MAX_STATEMENTS + 3, statements

    replay, statements = statements_of(owner_client, conversation, HTTP_IDEMPOTENCY_KEY="launch-email-1")
    assert replay.status_code == 200
    assert replay.json()["id"] == response.json()["id"]
    assert Conversation.objects.get(pk=conversation.pk).message_count == 2


@pytest.mark.django_db(transaction=True)
def test_the_one_authentication_query_still_refuses_a_logged_out_token(owner_client, make_conversation):
    conversation = make_conversation(messages=1)
    logout = owner_client.post("/api/auth/logout", {"refresh": owner_client.tokens["refresh"]}, format="json")
    assert logout.status_code == 204
    assert RevokedAccessToken.objects.exists()

    response = post_message(owner_client, conversation)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"
    assert Conversation.objects.get(pk=conversation.pk).message_count == 1


@pytest.mark.django_db(transaction=True)
def test_the_one_authentication_query_still_refuses_a_deactivated_user(owner_client, owner, make_conversation):
    conversation = make_conversation(messages=1)
    owner.is_active = False
    owner.save(update_fields=["is_active"])

    response = post_message(owner_client, conversation)

    assert response.status_code == 401
    assert Conversation.objects.get(pk=conversation.pk).message_count == 1
    # A token that no longer works does not count against its user's rate limit.
    assert not RateLimitWindow.objects.filter(key=f"user:{owner.pk}", count__gt=1).exists()
