"""Creates the database cache's table (settings.CACHES without REDIS_URL: LOCATION
raptorflow_cache), so that `migrate` is the only deploy step: without it every signed-in
request failed on the token-revocation check until someone ran `createcachetable`.

The table is made by `createcachetable`'s own code, so it is exactly what that command
makes (columns, primary key, the index on `expires`), and it is skipped when it already
exists (a database where `createcachetable` ran before). It is created with REDIS_URL set as
well: it is tiny, and switching the cache to the database later then needs no extra step.
Unapplying leaves it in place: older releases expect it too (they ran createcachetable)."""

from django.conf import settings
from django.core.management.commands.createcachetable import Command as CreateCacheTable
from django.db import migrations

CACHE_TABLE = "raptorflow_cache"


def _cache_tables() -> set[str]:
    tables = {CACHE_TABLE}
    for cache in settings.CACHES.values():
        if cache["BACKEND"] == "django.core.cache.backends.db.DatabaseCache":
            tables.add(cache["LOCATION"])
    return tables


def create_cache_tables(apps, schema_editor):
    command = CreateCacheTable()
    command.verbosity = 0
    for table in sorted(_cache_tables()):
        command.create_table(schema_editor.connection.alias, table, dry_run=False)


class Migration(migrations.Migration):
    dependencies = [
        ("raptorflow", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(create_cache_tables, migrations.RunPython.noop, elidable=False),
    ]
