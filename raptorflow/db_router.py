"""The optional read replica (DATABASE_REPLICA_URL) serves only the reads routed to it on
purpose.

A replica lags the primary by a little, so nothing goes there implicitly: every read and
write uses "default" unless the code asks for `replica_alias()`. Search reads do (a result
a moment old is fine); RAG context reads do not, so a reply always sees the message that
was just written. Migrations run on the primary only.
"""

from django.conf import settings

REPLICA = "replica"


def replica_alias() -> str:
    """The database alias for lag-tolerant reads: the replica when one is configured,
    otherwise the primary. Use as `Model.objects.using(replica_alias())`."""
    return REPLICA if REPLICA in settings.DATABASES else "default"


class PrimaryReplicaRouter:
    def db_for_read(self, model, **hints):
        return "default"

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        # Both aliases hold the same data, so objects read from either may be related.
        return obj1._state.db in ("default", REPLICA) and obj2._state.db in ("default", REPLICA)

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"
