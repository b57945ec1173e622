"""Lists the partial HNSW indexes of large tenants, or brings them in line with the data.

    manage.py tenant_vector_indexes            list them (state, rows, size, model)
    manage.py tenant_vector_indexes --sync     drop unwanted ones, build missing ones now
    manage.py tenant_vector_indexes --sync --dry-run

Indexes are normally built by the embedding job as a tenant grows (search.tenant_indexes);
run --sync after `reindex_embeddings` switches models, after loading data in bulk, or after
changing SEARCH_TENANT_INDEX_EF_CONSTRUCTION (indexes built with another value are rebuilt).
"""

from django.core.management.base import BaseCommand
from django.db import connection

from search.models import TenantVectorIndex
from search.providers import active_spec
from search.tenant_indexes import reconcile


class Command(BaseCommand):
    help = "List the tenant vector indexes, or (--sync) build the missing ones and drop the unwanted ones."

    def add_arguments(self, parser):
        parser.add_argument("--sync", action="store_true", help="Build missing indexes and drop unwanted ones.")
        parser.add_argument("--dry-run", action="store_true", help="With --sync: only say what would change.")

    def handle(self, *args, **options):
        if options["sync"]:
            spec = active_spec()
            for line in reconcile(
                model=spec.model, dimensions=spec.dimensions, dry_run=options["dry_run"], build_now=True
            ) or ["nothing to change"]:
                self.stdout.write(line)
            return
        with connection.cursor() as cursor:
            for index in TenantVectorIndex.objects.order_by("-rows"):
                cursor.execute("SELECT pg_relation_size(to_regclass(%s))", [index.name])
                size = cursor.fetchone()[0]
                self.stdout.write(
                    f"{index.name}  {index.state:8}  {index.rows:>9} rows  {(size or 0) / 2**20:8.1f} MB  "
                    f"{index.model}  organization {index.organization_id}  owner {index.owner_id or '-'}"
                )
