"""Uploads at the same moment, on real transactions (one connection per thread): the same bytes
from one person make one document; the last free place of the plan goes to exactly one."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from documents import services
from documents.models import Document
from raptorflow.errors import PaymentRequired
from tests.concurrency import run_together
from tests.documents.conftest import stored_files

THREADS = 4


@pytest.fixture(autouse=True)
def _no_processing(monkeypatch):
    # Only the upload's own transaction is under test here.
    monkeypatch.setattr(services, "_schedule", lambda document: None)


def uploader(owner, org, content: bytes):
    def call():
        document, created = services.document_upload(
            user=owner, organization=org, uploaded=SimpleUploadedFile("same.txt", content), title=None,
            visibility="private",
        )
        return ("created" if created else "existing", document.pk)

    return call


@pytest.mark.django_db(transaction=True)
def test_the_same_bytes_uploaded_at_once_make_one_document(owner, org, storage_dir):
    outcomes = run_together(*[uploader(owner, org, b"One brief, sent four times.")] * THREADS)

    assert [kind for kind, _ in outcomes].count("created") == 1, outcomes
    assert len({pk for _, pk in outcomes}) == 1
    assert Document.objects.count() == 1
    assert len(stored_files(storage_dir)) == 1


@pytest.mark.django_db(transaction=True)
def test_the_plans_last_document_goes_to_exactly_one_upload(owner, org, storage_dir):
    calls = [uploader(owner, org, f"Brief number {i}.".encode()) for i in range(THREADS)]

    with override_settings(FREE_PLAN_DOCUMENTS=1):
        outcomes = run_together(*calls)

    created = [outcome for outcome in outcomes if isinstance(outcome, tuple)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, PaymentRequired)]
    assert len(created) == 1 and len(refused) == THREADS - 1, outcomes
    assert Document.objects.count() == 1
    assert len(stored_files(storage_dir)) == 1
