"""Scale-out settings as a process started with them sees them: psycopg's connection pool
(DB_POOL_MAX_SIZE), the transaction-pooler switch, and the read replica router."""

import json
import subprocess
import sys

from django.db import router

from accounts.services import user_create_with_personal_organization
from conversations.models import Message
from raptorflow.db_router import replica_alias
from tests.production.conftest import ROOT, process_env, test_database_url


def _shell(code: str, **env) -> dict:
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env=process_env(**env), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


POOL_PROBE = """
import json
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT 1")
pool = connection.pool
print(json.dumps({"pool": pool is not None, "max_size": pool.max_size if pool else None,
                  "conn_max_age": connection.settings_dict["CONN_MAX_AGE"],
                  "server_side_cursors": not connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"],
                  "prepare_threshold": connection.connection.prepare_threshold}))
"""


def test_db_pool_max_size_gives_each_process_a_bounded_pool(db):
    seen = _shell(POOL_PROBE, DB_POOL_MAX_SIZE="3")
    assert seen["pool"] is True
    assert seen["max_size"] == 3
    assert seen["conn_max_age"] == 0


def test_without_a_pool_each_thread_keeps_one_persistent_connection(db):
    seen = _shell(POOL_PROBE)
    assert seen["pool"] is False
    assert seen["conn_max_age"] == 60


def test_behind_a_transaction_pooler_no_server_side_cursors_or_prepared_statements(db):
    seen = _shell(POOL_PROBE, DB_TRANSACTION_POOLER="true")
    assert seen["server_side_cursors"] is False
    assert seen["prepare_threshold"] is None


REPLICA_PROBE = """
import json
from django.db import connections, router
from accounts.services import user_create_with_personal_organization
from conversations.models import Message
from raptorflow.db_router import replica_alias
count = Message.objects.using(replica_alias()).count()
print(json.dumps({"alias": replica_alias(), "default_read": router.db_for_read(Message),
                  "write": router.db_for_write(Message),
                  "replica_connected": connections["replica"].connection is not None,
                  "migrate_replica": router.allow_migrate("replica", "conversations")}))
"""


def test_with_a_replica_only_explicitly_routed_reads_go_there(db):
    seen = _shell(REPLICA_PROBE, DATABASE_REPLICA_URL=test_database_url())
    assert seen == {
        "alias": "replica",
        "default_read": "default",
        "write": "default",
        "replica_connected": True,
        "migrate_replica": False,
    }


def test_without_a_replica_routed_reads_use_the_primary():
    assert replica_alias() == "default"
    assert router.db_for_read(Message) == "default"
    assert router.allow_migrate("default", "conversations") is True


# --- which reads the replica serves -------------------------------------------------------

ROUTING_PROBE = """
import json
from django.db import connections
from django.test.utils import CaptureQueriesContext
from accounts.models import User
from conversations.models import Conversation
from rag.context import context_retrieve
from search.selectors import search_messages

user = User.objects.get(email="replica@acme.test")
organization = user.default_organization
conversation = Conversation.objects.get(owner=user)
with CaptureQueriesContext(connections["replica"]) as search_replica:
    found = search_messages(user=user, organization=organization, query="ad spend", limit=5,
                            conversation_id=conversation.id)
with CaptureQueriesContext(connections["replica"]) as rag_replica, \\
        CaptureQueriesContext(connections["default"]) as rag_primary:
    context = context_retrieve(user=user, organization=organization, conversation=conversation, query="ad spend")

def vector_reads(capture):
    return sum("search_messageembedding" in query["sql"] for query in capture.captured_queries)

print(json.dumps({
    "search_hits": len(found.hits),
    "search_vector_reads_on_replica": vector_reads(search_replica),
    "rag_queries_on_replica": len(rag_replica.captured_queries),
    "rag_vector_reads_on_primary": vector_reads(rag_primary),
    "rag_context_messages": len(context.messages),
}))
"""


def test_search_reads_the_replica_and_rag_context_reads_only_the_primary(transactional_db, settings):
    from conversations.services import conversation_create, message_create

    settings.BACKGROUND_JOBS_EAGER = True  # the message is embedded when it commits
    settings.CELERY_BROKER_URL = ""
    user = user_create_with_personal_organization(email="replica@acme.test", name="Replica")
    conversation = conversation_create(organization=user.default_organization, owner=user, title="Ads",
                                       agent_type="strategy")
    message_create(conversation=conversation, role="user", content="How much should we spend on ads?")

    seen = _shell(ROUTING_PROBE, DATABASE_REPLICA_URL=test_database_url())

    assert seen["search_hits"] == 1
    assert seen["search_vector_reads_on_replica"] >= 1
    # RAG context (recent and similar messages) comes from the primary only, so a reply
    # always sees the message that was just written.
    assert seen["rag_queries_on_replica"] == 0
    assert seen["rag_vector_reads_on_primary"] >= 1
    assert seen["rag_context_messages"] == 1
