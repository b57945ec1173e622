"""Moves search to another embedding model without a gap.

    manage.py reindex_embeddings --model NEW [--provider P] [--dimensions N] [--batch-size 64] [--keep-old]

1. embeds every message (and, through the embeddings_backfill hook point, every document
   chunk) with NEW beside the current vectors (search keeps serving the old
   model meanwhile; resumable like backfill_embeddings),
2. creates NEW's partial HNSW index (CONCURRENTLY), and NEW's partial index of every large
   tenant (search.tenant_indexes),
3. embeds what arrived in the meantime, then switches the active model (a row in
   search.ActiveEmbeddingModel, which wins over EMBEDDING_PROVIDER / EMBEDDING_MODEL),
   and embeds what arrived during the switch,
4. drops the old vectors and their indexes, tenant indexes included (unless --keep-old).
NEW's provider must be usable by this process (its API key in the environment). Set
EMBEDDING_PROVIDER / EMBEDDING_MODEL to match afterwards so the settings say what is active.
"""

from django.core.management.base import BaseCommand, CommandError

from raptorflow import hooks
from raptorflow.errors import DomainError
from search import services, tenant_indexes, vector_index
from search.backfill import run_backfill
from search.providers import PROVIDERS, active_spec, get_embedding_provider, spec_for_model


class Command(BaseCommand):
    help = "Re-embed every message with a new embedding model, switch search to it, drop the old vectors."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="The new embedding model.")
        parser.add_argument("--provider", choices=PROVIDERS, help="Its provider (default: inferred from the name).")
        parser.add_argument("--dimensions", type=int, help="Its vector size (default: the model's).")
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--keep-old", action="store_true", help="Keep the old model's vectors and index.")

    def handle(self, *args, **options):
        old = active_spec()
        try:
            new = spec_for_model(options["model"], provider=options["provider"], dimensions=options["dimensions"])
            provider = get_embedding_provider(new)
        except (DomainError, ValueError) as exc:
            raise CommandError(str(getattr(exc, "detail", exc))) from exc

        self.stdout.write(
            f"Reindexing from {old.provider}:{old.model} to {new.provider}:{new.model} ({new.dimensions}d)"
        )
        for step in ("embedding", "catching up"):
            if step == "catching up" and vector_index.ensure_index(new.model, new.dimensions):
                self.stdout.write(f"Created the HNSW index {vector_index.index_name(new.model)}")
            if step == "catching up":
                for line in tenant_indexes.build_missing(model=new.model, dimensions=new.dimensions, build_now=True):
                    self.stdout.write(f"Tenant index: {line}")
            summary = run_backfill(provider=provider, batch_size=options["batch_size"], progress_file=self.stderr._out)
            self.stdout.write(f"{step.capitalize()}: {summary.describe()}")
            if summary.error:
                raise CommandError(f"Reindex stopped before switching: {summary.error} Run it again to resume.")
            self._other_tables(new, options["batch_size"], before_switch=True)

        services.active_model_switch(spec=new)
        self.stdout.write(self.style.SUCCESS(f"Search now uses {new.model}."))
        # Messages stored between the catch-up pass and the switch were embedded with the
        # old model only; from now on new messages get the new one.
        summary = run_backfill(provider=provider, batch_size=options["batch_size"], progress_file=self.stderr._out)
        self.stdout.write(f"After switching: {summary.describe()}")
        if summary.error:
            raise CommandError(
                f"Switched, but some messages are not embedded yet: {summary.error} "
                "Run backfill_embeddings to finish; the old vectors were kept."
            )
        self._other_tables(new, options["batch_size"], before_switch=False)
        if options["keep_old"] or old.model == new.model:
            return
        dropped = services.unscoped_embeddings_drop_other_models(keep_model=new.model)
        dropped += sum(hooks.embeddings_dropping(keep_model=new.model))
        self.stdout.write(f"Dropped {dropped} vectors of other models and their indexes.")
        for line in tenant_indexes.reconcile(model=new.model, dimensions=new.dimensions, build_now=True):
            self.stdout.write(f"Tenant index: {line}")

    def _other_tables(self, spec, batch_size: int, *, before_switch: bool) -> None:
        """The other embedded tables (document chunks), through the embeddings_backfill hook."""
        try:
            for line in hooks.embeddings_backfill(spec=spec, batch_size=batch_size, organization_id=None):
                self.stdout.write(line)
        except DomainError as exc:
            if before_switch:
                raise CommandError(f"Reindex stopped before switching: {exc.detail} Run it again to resume.") from exc
            raise CommandError(
                f"Switched, but some document chunks are not embedded yet: {exc.detail} "
                "Run backfill_embeddings to finish; the old vectors were kept."
            ) from exc
