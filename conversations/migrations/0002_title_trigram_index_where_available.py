"""A trigram index for the title search, only where the server offers pg_trgm.

The embedded PostgreSQL has no pg_trgm, so the index cannot live in the model's Meta (a
migration that always creates it would fail there); without it the search stays bounded by
the (organization, owner, activity) index. The expression matches what Django's
`title__icontains` compiles to on PostgreSQL: UPPER("title"::text) LIKE UPPER(%s).
"""

import logging

from django.db import DatabaseError, migrations, transaction

logger = logging.getLogger(__name__)

INDEX_NAME = "conv_title_upper_trgm"


def _pg_trgm_available(cursor) -> bool:
    cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    return cursor.fetchone() is not None


def create_trigram_index(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        if not _pg_trgm_available(cursor):
            logger.info("pg_trgm is not offered by this server: title search uses the owner/activity index only.")
            return
        try:
            # A savepoint: a role not allowed to create the extension must not abort migrate.
            with transaction.atomic(using=connection.alias):
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                cursor.execute(
                    f"CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON conversations_conversation "
                    "USING gin ((UPPER(title::text)) gin_trgm_ops)"
                )
        except DatabaseError as exc:
            logger.warning("Skipped the trigram index on conversation titles: %s", exc)


def drop_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX_NAME}")


class Migration(migrations.Migration):
    dependencies = [("conversations", "0001_initial")]

    operations = [migrations.RunPython(create_trigram_index, drop_trigram_index, elidable=False)]
