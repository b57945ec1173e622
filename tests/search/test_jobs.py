"""Automatic embedding of new messages after commit: eagerly in tests, on the in-process
worker thread without a broker, enqueued for Celery with one. A provider failure never
loses the message."""

import threading
import time

import httpx
import pytest

from conversations.models import Message
from raptorflow import jobs
from search import tasks
from search.models import MessageEmbedding, SearchExclusion
from search.services import text_sha256
from tests.conftest import make_client
from tests.redis_server import redis_url
from tests.search.conftest import ADS_TEXT, add_message, make_conversation

OPENAI_URL = "https://api.openai.com/v1/embeddings"


def _post_message(client, conversation, content):
    return client.post(
        f"/api/conversations/{conversation.id}/messages", {"role": "user", "content": content}, format="json"
    )


def _wait_for(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.django_db
def test_a_new_message_is_embedded_after_its_transaction_commits(
    owner_client, conversation, local_model, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _post_message(owner_client, conversation, ADS_TEXT)
    assert response.status_code == 201
    row = MessageEmbedding.objects.get(message_id=response.json()["id"])
    assert (row.model, row.dimensions, row.text_sha256) == ("all-MiniLM-L6-v2-int8", 384, text_sha256(ADS_TEXT))
    assert (row.organization_id, row.owner_id, row.conversation_id) == (
        conversation.organization_id,
        conversation.owner_id,
        conversation.id,
    )


@pytest.mark.django_db
def test_nothing_is_embedded_before_the_transaction_commits(owner_client, conversation, local_model):
    # Inside the test's transaction the on_commit callbacks never run.
    response = _post_message(owner_client, conversation, ADS_TEXT)
    assert response.status_code == 201
    assert not MessageEmbedding.objects.exists()


@pytest.mark.django_db
def test_a_provider_outage_never_loses_or_fails_the_message(
    settings, respx_mock, owner_client, conversation, django_capture_on_commit_callbacks
):
    settings.EMBEDDING_PROVIDER = "openai"
    settings.OPENAI_API_KEY = "sk-test"
    settings.PROVIDER_MAX_RETRIES = 0
    respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(503, json={"error": {"message": "down"}}))
    with django_capture_on_commit_callbacks(execute=True):
        response = _post_message(owner_client, conversation, ADS_TEXT)
    assert response.status_code == 201
    assert Message.objects.filter(id=response.json()["id"], content=ADS_TEXT).exists()
    assert not MessageEmbedding.objects.exists()


@pytest.mark.django_db
def test_the_embedding_job_is_idempotent(conversation, local_model):
    message = add_message(conversation, ADS_TEXT)
    assert tasks.embed_message(str(message.id)) == "created"
    first = MessageEmbedding.objects.get(message=message)
    assert tasks.embed_message(str(message.id)) == "unchanged"
    assert list(MessageEmbedding.objects.filter(message=message)) == [first]
    assert MessageEmbedding.objects.get(message=message).updated_at == first.updated_at


@pytest.mark.django_db
def test_the_embedding_job_skips_deleted_empty_and_excluded_messages(conversation, local_model):
    import uuid

    assert tasks.embed_message(str(uuid.uuid4())) == "skipped"
    empty = add_message(conversation, "   ")
    assert tasks.embed_message(str(empty.id)) == "skipped"
    excluded = add_message(conversation, ADS_TEXT)
    SearchExclusion.objects.create(
        message=excluded, organization_id=excluded.organization_id, owner_id=excluded.owner_id
    )
    assert tasks.embed_message(str(excluded.id)) == "skipped"
    assert not MessageEmbedding.objects.exists()


@pytest.mark.django_db
def test_the_embedding_job_raises_provider_outages_for_celery_to_retry(settings, respx_mock, conversation):
    from raptorflow.errors import UpstreamUnavailable

    settings.EMBEDDING_PROVIDER = "openai"
    settings.OPENAI_API_KEY = "sk-test"
    settings.PROVIDER_MAX_RETRIES = 0
    respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(500, json={"error": {"message": "down"}}))
    message = add_message(conversation, ADS_TEXT)
    with pytest.raises(UpstreamUnavailable):
        tasks.embed_message(str(message.id))
    assert tasks.embed_message.autoretry_for == (UpstreamUnavailable,)
    assert tasks.embed_message.acks_late is True


@pytest.mark.django_db
def test_with_a_broker_the_job_is_enqueued_for_celery_after_commit(
    settings, monkeypatch, owner_client, conversation, django_capture_on_commit_callbacks
):
    settings.BACKGROUND_JOBS_EAGER = False
    settings.CELERY_BROKER_URL = redis_url(15)
    enqueued = []
    monkeypatch.setattr(tasks.embed_message, "apply_async", lambda args, **options: enqueued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        response = _post_message(owner_client, conversation, ADS_TEXT)
        assert enqueued == []  # nothing leaves before the commit
    assert enqueued == [(response.json()["id"],)]
    assert not MessageEmbedding.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_the_job_runs_on_the_in_process_worker_thread(settings, monkeypatch, owner, org, local_model):
    settings.BACKGROUND_JOBS_EAGER = False
    ran_on = []
    real_run = tasks.embed_message.run

    def recording_run(message_id):
        ran_on.append(threading.current_thread().name)
        return real_run(message_id)

    monkeypatch.setattr(tasks.embed_message, "run", recording_run)
    client = make_client(owner, org)
    conversation = make_conversation(owner, org)
    response = _post_message(client, conversation, ADS_TEXT)
    assert response.status_code == 201
    jobs.in_process_worker().wait_until_idle()
    assert ran_on == ["raptorflow-jobs"]
    assert MessageEmbedding.objects.filter(message_id=response.json()["id"]).exists()


@pytest.mark.django_db(transaction=True)
def test_the_in_process_worker_retries_a_provider_outage(settings, monkeypatch, respx_mock, owner, org):
    settings.BACKGROUND_JOBS_EAGER = False
    settings.EMBEDDING_PROVIDER = "openai"
    settings.OPENAI_API_KEY = "sk-test"
    settings.PROVIDER_MAX_RETRIES = 0
    monkeypatch.setattr(jobs, "RETRY_BASE_SECONDS", 0.01)
    ok = httpx.Response(
        200,
        json={
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1] * 1536}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        },
    )
    down = httpx.Response(503, json={"error": {"message": "down"}})
    route = respx_mock.post(OPENAI_URL).mock(side_effect=[down, down, ok])
    conversation = make_conversation(owner, org)
    message = add_message(conversation, ADS_TEXT)
    tasks.schedule_message_embedding(message.id)
    assert _wait_for(lambda: MessageEmbedding.objects.filter(message=message).exists())
    assert route.call_count == 3


@pytest.mark.django_db(transaction=True)
def test_deleting_a_conversation_while_its_messages_are_being_embedded_never_deadlocks(owner, org, local_model):
    """The conversation is deleted as conversations.services does it (its row locked FOR
    UPDATE first) while an embedding job stores vectors for its messages: the job waits for
    the delete, then finds nothing left to store."""
    from django.db import connection, transaction

    from conversations.models import Conversation
    from search.services import embeddings_store

    conversation = make_conversation(owner, org)
    messages = [add_message(conversation, text) for text in ("first", "second", "third")]
    outcome = {}

    def embed():
        try:
            outcome["result"] = embeddings_store(
                items=[(m, m.content) for m in messages], provider=local_model, on_purpose=False
            )
        except Exception as exc:
            outcome["error"] = exc
        finally:
            connection.close()

    def job_waits_for_a_lock():
        with connection.cursor() as cursor:
            # Inside a transaction the statistics views are a snapshot unless cleared.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0] > 0

    thread = threading.Thread(target=embed)
    with transaction.atomic():
        Conversation.objects.select_for_update().get(pk=conversation.pk)
        thread.start()
        assert _wait_for(job_waits_for_a_lock)
        Conversation.objects.get(pk=conversation.pk).delete()
    thread.join(timeout=30)

    assert "error" not in outcome, outcome.get("error")
    assert set(outcome["result"].statuses.values()) == {"skipped"}
    assert not MessageEmbedding.objects.exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
