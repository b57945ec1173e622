"""Embeds every message that has no vector of the active (or given) model yet.

    manage.py backfill_embeddings [--org ID] [--conversation ID] [--model NAME]
                                  [--batch-size 64] [--limit N] [--dry-run]

Document chunks are covered too (after the messages, through the embeddings_backfill hook
point that the documents app fills in). Resumable (run it again after an interruption: it
continues with what is missing),
idempotent (never a second vector for a message and model), skips messages whose
embedding was deleted on purpose, shows a progress bar with rate and ETA and ends with a
summary. Use it after a provider outage, or to embed messages from before search existed.
"""

from django.core.management.base import BaseCommand, CommandError

from raptorflow import hooks
from raptorflow.errors import DomainError
from search import vector_index
from search.backfill import run_backfill
from search.providers import active_spec, get_embedding_provider, spec_for_model


class Command(BaseCommand):
    help = "Embed the messages that lack a vector of the active (or --model) embedding model."

    def add_arguments(self, parser):
        parser.add_argument("--org", dest="organization_id", help="Only this organization's messages (its id).")
        parser.add_argument("--conversation", dest="conversation_id", help="Only this conversation's messages.")
        parser.add_argument("--model", help="Embedding model (default: the active one).")
        parser.add_argument("--batch-size", type=int, default=64, help="Messages per provider call (default 64).")
        parser.add_argument("--limit", type=int, help="Stop after this many messages.")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be embedded.")

    def handle(self, *args, **options):
        if options["batch_size"] < 1 or (options["limit"] is not None and options["limit"] < 1):
            raise CommandError("--batch-size and --limit must be positive.")
        try:
            spec = spec_for_model(options["model"]) if options["model"] else active_spec()
            provider = get_embedding_provider(spec)
        except DomainError as exc:
            raise CommandError(str(exc.detail)) from exc
        if not options["dry_run"]:
            # Search of this model needs its HNSW index (a no-op when it exists).
            vector_index.ensure_index(spec.model, spec.dimensions)

        summary = run_backfill(
            provider=provider,
            organization_id=options["organization_id"],
            conversation_id=options["conversation_id"],
            batch_size=options["batch_size"],
            limit=options["limit"],
            dry_run=options["dry_run"],
            progress_file=self.stderr._out,
        )
        if options["dry_run"]:
            self.stdout.write(f"Dry run: {summary.pending} messages would be embedded with {spec.model}.")
            return
        self.stdout.write(f"Backfill {summary.describe()}")
        if summary.error:
            raise CommandError(f"Backfill stopped: {summary.error} Run it again to resume.")
        if options["conversation_id"] is None:
            try:
                for line in hooks.embeddings_backfill(
                    spec=spec, batch_size=options["batch_size"], organization_id=options["organization_id"]
                ):
                    self.stdout.write(line)
            except DomainError as exc:
                raise CommandError(f"Backfill stopped: {exc.detail} Run it again to resume.") from exc
