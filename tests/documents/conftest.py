"""Fixtures of the documents tests: files stored under a temporary directory, background jobs
run eagerly once the upload commits, the real local embedding model, and an `upload` helper
that posts a real multipart body."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from documents.models import Document

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _documents_settings(settings, tmp_path):
    settings.BACKGROUND_JOBS_EAGER = True
    settings.CELERY_BROKER_URL = ""
    settings.EMBEDDING_PROVIDER = "local"
    settings.EMBEDDING_MODEL = ""
    settings.EMBEDDING_DIMENSIONS = 0
    settings.OPENAI_API_KEY = ""
    settings.GEMINI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    settings.PROVIDER_TIMEOUT_SECONDS = 5.0
    settings.PROVIDER_MAX_RETRIES = 0
    settings.STORAGES = {
        **settings.STORAGES,
        "documents": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "documents"), "base_url": None},
        },
    }
    return settings


@pytest.fixture
def storage_dir(tmp_path):
    return tmp_path / "documents"


def stored_files(storage_dir) -> list:
    return sorted(p for p in storage_dir.rglob("*") if p.is_file()) if storage_dir.exists() else []


@pytest.fixture
def upload(django_capture_on_commit_callbacks):
    """upload(client, filename, content, **fields) -> response; processing runs once the
    upload's transaction commits, as the in-process worker would run it."""

    def _upload(client, filename, content, **fields):
        body = {"file": SimpleUploadedFile(filename, content), **fields}
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/api/documents", body, format="multipart")

    return _upload


def reload(document_id) -> Document:
    return Document.objects.get(pk=document_id)


LOREM_PAGES = [
    "Brand guidelines overview. RaptorFlow's voice is confident, warm and concrete. Avoid jargon.",
    "Colour palette. Primary teal 0F766E, secondary amber F59E0B, neutral slate for body text.",
    "Aurora campaign budget. The Aurora spring campaign has a budget of 42,000 euros, split between "
    "paid social (60 percent) and running club sponsorships (40 percent).",
    "Typography. Headlines use Inter Bold; body copy uses Inter Regular at 16 pixels.",
    "Approvals. Every public asset is approved by the brand lead before publication.",
]
