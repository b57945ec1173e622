"""Hook points (raptorflow/hooks.py) are filled in by the layers above, and the audit
context reaches services and background jobs without a `request` argument."""

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from billing.services import cancel_for_organization_deletion
from conversations.export import ExportSection, export_sections
from conversations.feedback import feedback_metric_families
from conversations.services import conversation_create
from documents import services as documents_services
from rag.titles import schedule_title
from raptorflow import audit, hooks, jobs
from raptorflow.errors import exception_handler
from raptorflow.models import AuditLog
from search.tasks import schedule_message_embedding
from search.tenant_indexes import drop_for_organization


def test_billing_search_and_documents_fill_in_the_core_hook_points():
    # search's receiver drops the organization's tenant vector indexes (should billing then
    # block the deletion, the next embedding job rebuilds them: speed only, no data); billing
    # before documents: a subscription that cannot be cancelled stops the deletion before any
    # document is deleted.
    assert hooks.organization_deleting.receivers == (
        drop_for_organization,
        cancel_for_organization_deletion,
        documents_services.unscoped_delete_organization_documents,
    )
    assert hooks.message_stored.receivers == (schedule_message_embedding,)
    assert hooks.member_leaving.receivers == (documents_services.unscoped_delete_private_documents_of_member,)
    assert hooks.account_deleting.receivers == (documents_services.unscoped_delete_private_documents_of_account,)
    assert hooks.embeddings_backfill.receivers == (documents_services.unscoped_backfill_chunks,)
    assert hooks.embeddings_dropping.receivers == (documents_services.unscoped_drop_chunk_vectors_of_other_models,)
    assert hooks.untitled_conversation_answered.receivers == (schedule_title,)
    assert hooks.scrape_time_metrics.receivers == (feedback_metric_families,)


def test_registering_a_receiver_twice_keeps_one():
    point = hooks.HookPoint("test")
    seen = []
    point.register(seen.append)
    point.register(seen.append)

    point("once")

    assert seen == ["once"]


def test_a_receiver_failure_reaches_the_caller():
    point = hooks.HookPoint("test")

    def refuse(organization):
        raise RuntimeError("cannot cancel")

    point.register(refuse)

    with pytest.raises(RuntimeError, match="cannot cancel"):
        point("org")


@pytest.fixture
def notes_section():
    """A section a higher layer (documents) would add to the account export."""

    class NoteSerializer(serializers.Serializer):
        text = serializers.CharField()

    section = ExportSection(
        name="notes",
        field=NoteSerializer(many=True),
        collect=lambda user, organization: [{"text": f"{user.email} in {organization.name}"}],
    )
    export_sections.register(section)
    yield section
    export_sections.unregister(section)


def test_a_registered_export_section_is_in_the_export(owner_client, owner, org, notes_section):
    conversation_create(organization=org, owner=owner, title="Q4", agent_type="strategy")

    body = owner_client.get("/api/auth/me/export").json()

    assert body["notes"] == [{"text": f"{owner.email} in {org.name}"}]
    assert [c["title"] for c in body["conversations"]] == ["Q4"]


def test_the_export_has_its_own_parts_and_the_documents_section(owner_client):
    body = owner_client.get("/api/auth/me/export").json()

    assert set(body) == {"exported_at", "scope", "user", "organization", "conversations", "documents"}


def test_an_audited_action_carries_the_caller_ip_and_request_id(owner_client, owner, org):
    conversation = conversation_create(organization=org, owner=owner, title="Q4", agent_type="strategy")

    response = owner_client.delete(
        f"/api/conversations/{conversation.id}", HTTP_X_REQUEST_ID="req-delete-42", REMOTE_ADDR="203.0.113.9"
    )

    assert response.status_code == 204
    entry = AuditLog.objects.get(action="conversation.deleted")
    assert (entry.actor_id, entry.actor_email) == (owner.id, owner.email)
    assert entry.request_id == "req-delete-42"
    assert entry.ip_address == "203.0.113.9"
    assert entry.organization_id == org.id


def test_the_context_ends_with_the_request(owner_client):
    owner_client.get("/api/auth/me", HTTP_X_REQUEST_ID="req-over")

    assert audit.current() == audit.AuditContext()


class RecordingTask:
    """Stands in for a Celery task: records the audit context it ran in."""

    name = "tests.recording"
    autoretry_for = ()
    max_retries = 0

    def __init__(self):
        self.contexts = []

    def __call__(self, *args):
        self.contexts.append(audit.current())


def test_an_in_process_job_runs_in_the_audit_context_of_its_request(owner):
    task = RecordingTask()
    worker = jobs.InProcessWorker(maxsize=4)

    with audit.audit_context(actor=owner, ip="198.51.100.7", request_id="req-job"):
        worker.submit(task, (), context=audit.current())
    worker.wait_until_idle()

    assert task.contexts == [audit.AuditContext(actor=owner, ip="198.51.100.7", request_id="req-job")]
    assert audit.current() == audit.AuditContext()


@pytest.mark.django_db(transaction=True)
def test_an_eager_job_scheduled_in_a_request_context_runs_in_it(settings, owner):
    settings.BACKGROUND_JOBS_EAGER = True
    task = RecordingTask()

    with audit.audit_context(actor=owner, request_id="req-eager"):
        jobs.run_after_commit(task)

    assert [c.request_id for c in task.contexts] == ["req-eager"]
    assert task.contexts[0].actor == owner


def test_a_django_validation_error_from_a_service_is_a_400_naming_the_field():
    response = exception_handler(DjangoValidationError({"title": ["Too long."]}), {})

    assert response.status_code == 400
    assert response.data == {
        "error": {"code": "validation_error", "message": "Invalid input: title.", "fields": {"title": ["Too long."]}}
    }
