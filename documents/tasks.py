"""Background jobs of the documents app (raptorflow.jobs: Celery with a broker, the
in-process worker on the embedded default).

ingest_document(document_id, generation): reads, chunks and embeds one document
(documents.services.unscoped_document_ingest). Idempotent and safe to redeliver
(acks_late): it acts only while `generation` is the document's latest processing request
and the document is pending or processing, and it writes chunks and vectors in one
transaction at the end. An embedding provider outage ends the document `failed` with a
message saying to reprocess it; it is not retried here, so a document never stays
`processing` behind a long retry schedule.
"""

from celery import shared_task

from raptorflow import metrics


@shared_task(acks_late=True)
def ingest_document(document_id: str, generation: int) -> str:
    from documents.services import unscoped_document_ingest

    try:
        outcome = unscoped_document_ingest(document_id=document_id, generation=generation)
    except Exception as exc:
        metrics.count_background_job(task="ingest_document", outcome=type(exc).__name__)
        raise
    metrics.count_background_job(task="ingest_document", outcome=outcome)
    return outcome
