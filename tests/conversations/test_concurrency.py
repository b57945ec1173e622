"""Concurrent writers on real transactions (one database connection per thread): sequence
numbers stay exactly 1..N, message_count equals the number of rows, an Idempotency-Key is
honoured once and usage increments are never lost."""

from collections import Counter
from functools import partial

import pytest

from conversations.models import Conversation, Message
from conversations.services import conversation_add_usage
from raptorflow import jobs
from tests.concurrency import run_together
from tests.conftest import make_client

THREADS = 10
MESSAGES_PER_THREAD = 3


def run_in_threads(target, count):
    """target(index) in `count` threads released together."""
    return run_together(*[partial(target, index) for index in range(count)])


@pytest.fixture(autouse=True)
def _background_jobs_finish_within_the_test(transactional_db):
    """Every committed message schedules its real embedding job on the in-process worker;
    they all finish before the database is flushed for the next test."""
    yield
    jobs.in_process_worker().wait_until_idle()


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_get_sequences_exactly_1_to_n(owner, org, make_conversation):
    conversation = make_conversation()
    clients = [make_client(owner, org) for _ in range(THREADS)]
    url = f"/api/conversations/{conversation.id}/messages"

    def post_messages(index):
        return [
            clients[index]
            .post(url, {"role": "user", "content": f"thread {index} message {n}"}, format="json")
            .status_code
            for n in range(MESSAGES_PER_THREAD)
        ]

    outcomes = run_in_threads(post_messages, THREADS)

    assert outcomes == [[201] * MESSAGES_PER_THREAD] * THREADS
    total = THREADS * MESSAGES_PER_THREAD
    sequences = sorted(Message.objects.filter(conversation=conversation).values_list("sequence", flat=True))
    assert sequences == list(range(1, total + 1))
    row = Conversation.objects.get(pk=conversation.pk)
    assert row.message_count == total == Message.objects.filter(conversation=conversation).count()
    newest = Message.objects.filter(conversation=conversation).latest("sequence")
    assert row.last_message_at == newest.created_at


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_idempotency_key_store_one_message(owner, org, make_conversation):
    conversation = make_conversation()
    clients = [make_client(owner, org) for _ in range(THREADS)]
    url = f"/api/conversations/{conversation.id}/messages"

    def post_same(index):
        response = clients[index].post(
            url, {"role": "user", "content": "only once"}, format="json", headers={"Idempotency-Key": "retry-7"}
        )
        return response.status_code, response.json()["id"]

    outcomes = run_in_threads(post_same, THREADS)

    assert Counter(status for status, _ in outcomes) == {201: 1, 200: THREADS - 1}
    assert len({message_id for _, message_id in outcomes}) == 1
    assert Message.objects.filter(conversation=conversation).count() == 1
    assert Conversation.objects.get(pk=conversation.pk).message_count == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_usage_increments_are_never_lost(make_conversation):
    conversation = make_conversation()

    def add_usage(index):
        stale = Conversation.objects.get(pk=conversation.pk)
        conversation_add_usage(conversation=stale, prompt_tokens=10, completion_tokens=1)

    outcomes = run_in_threads(add_usage, THREADS)

    assert outcomes == [None] * THREADS
    assert Conversation.objects.get(pk=conversation.pk).usage == {
        "prompt_tokens": 10 * THREADS,
        "completion_tokens": THREADS,
        "total_tokens": 11 * THREADS,
    }


@pytest.mark.django_db(transaction=True)
def test_delete_racing_with_posts_leaves_no_orphan_messages(owner, org, make_conversation):
    conversation = make_conversation(messages=3)
    clients = [make_client(owner, org) for _ in range(THREADS)]
    url = f"/api/conversations/{conversation.id}"

    def post_or_delete(index):
        if index == 0:
            return clients[index].delete(url).status_code
        return clients[index].post(f"{url}/messages", {"role": "user", "content": "hi"}, format="json").status_code

    outcomes = run_in_threads(post_or_delete, THREADS)

    assert outcomes[0] == 204
    # Each post either landed before the delete (and was deleted with it) or found nothing.
    assert set(outcomes[1:]) <= {201, 404}
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
