from django.apps import AppConfig


class SearchConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "search"

    def ready(self):
        from raptorflow import hooks, jobs
        from search import (
            backfill,
            checks,  # noqa: F401  (registers the embedding settings checks)
        )
        from search.tasks import embed_message, embed_message_batch, schedule_message_embedding
        from search.tenant_indexes import drop_for_organization

        # Every stored message is embedded off the request path (raptorflow/hooks.py).
        hooks.message_stored.register(schedule_message_embedding)
        # A deleted organization's tenant vector indexes go with it.
        hooks.organization_deleting.register(drop_for_organization)
        # On the in-process worker (embedded default): queued messages are embedded many to
        # one call, and the messages still without a vector of the active model are a
        # durable backlog, swept when the worker starts and after its queue overflowed.
        jobs.register_batch(embed_message, embed_message_batch, size=backfill.WORKER_BATCH_SIZE)
        jobs.register_backlog(
            jobs.Backlog(name="embeddings", covers=(embed_message,), count=backfill.pending_count, sweep=backfill.sweep)
        )
