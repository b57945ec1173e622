"""Background jobs of the search app.

schedule_message_embedding(message_id): called by conversations.services.message_create
inside transaction.on_commit after a message is stored; embeds it off the request path
(raptorflow.jobs: a Celery worker with a broker, an in-process thread without).

embed_message(message_id): the job. Idempotent — it does nothing when the active model's
vector of the same text exists, when the message is gone, or when it was taken out of
search on purpose — so a redelivered or repeated job is harmless (acks_late). A provider
that is down or rate limiting (UpstreamUnavailable) is retried with exponential backoff;
the message itself is stored already and never waits for this. Whatever is still missing
after the retries is found by `manage.py backfill_embeddings`. Once a new vector is stored,
its tenant's partial HNSW index is scheduled if they just grew large enough
(search.tenant_indexes.index_if_grown).

build_tenant_vector_index(table, model, dimensions, *scope): builds one tenant's partial
HNSW index CONCURRENTLY (idempotent: a claimed or built index is left alone; the cap holds).
drop_tenant_vector_indexes(organization_id): drops an organization's tenant indexes.
reconcile_tenant_vector_indexes(): builds what is missing and drops what is no longer
wanted (`manage.py tenant_vector_indexes` runs the same).
"""

from celery import shared_task

from raptorflow import jobs, metrics
from raptorflow.errors import NotConfigured, UpstreamUnavailable

CREATED = "created"  # search.services.CREATED, without importing the services at startup


@shared_task(
    acks_late=True,
    autoretry_for=(UpstreamUnavailable,),
    # A missing key or unknown provider does not fix itself by waiting.
    dont_autoretry_for=(NotConfigured,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=6,
)
def embed_message(message_id: str) -> str:
    from search.services import unscoped_message_embed

    try:
        outcome = unscoped_message_embed(message_id=message_id)
    except Exception as exc:
        metrics.count_background_job(task="embed_message", outcome=type(exc).__name__)
        raise
    metrics.count_background_job(task="embed_message", outcome=outcome)
    if outcome == CREATED:
        _index_tenants_if_grown([message_id])
    return outcome


def _index_tenants_if_grown(message_ids: list[str]) -> None:
    from search.providers import active_spec
    from search.tenant_indexes import index_owners_if_grown

    spec = active_spec()
    index_owners_if_grown(message_ids=message_ids, model=spec.model, dimensions=spec.dimensions)


@shared_task(acks_late=True)
def build_tenant_vector_index(table: str, model: str, dimensions: int, *scope: str) -> str:
    from search.tenant_indexes import table_named, unscoped_index_build

    outcome = unscoped_index_build(table=table_named(table), model=model, dimensions=dimensions, scope=scope)
    metrics.count_background_job(task="build_tenant_vector_index", outcome=outcome)
    return outcome


@shared_task(acks_late=True)
def drop_tenant_vector_indexes(organization_id: str) -> int:
    from search.tenant_indexes import unscoped_organization_indexes_drop

    return unscoped_organization_indexes_drop(organization_id=organization_id)


@shared_task(acks_late=True)
def reconcile_tenant_vector_indexes() -> list[str]:
    from search.providers import active_spec
    from search.tenant_indexes import reconcile

    spec = active_spec()
    return reconcile(model=spec.model, dimensions=spec.dimensions)


def schedule_message_embedding(message_id) -> None:
    jobs.run_after_commit(embed_message, str(message_id))


def embed_message_batch(jobs_args: list[tuple]) -> None:
    """The in-process worker's form of many queued embed_message jobs: one provider call
    (search/apps.py registers it with raptorflow.jobs; Celery runs the jobs one by one)."""
    from search.backfill import embed_messages

    message_ids = [args[0] for args in jobs_args]
    try:
        statuses = embed_messages(message_ids=message_ids)
    except Exception as exc:
        metrics.count_background_job(task="embed_message", outcome=type(exc).__name__)
        raise
    for outcome in statuses.values():
        metrics.count_background_job(task="embed_message", outcome=outcome)
    _index_tenants_if_grown([message_id for message_id, outcome in statuses.items() if outcome == CREATED])
