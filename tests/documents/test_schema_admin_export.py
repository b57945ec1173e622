"""The documents endpoints in the OpenAPI schema (typed for a generated client, with their
errors), the admin's list and reprocess action, the account export's documents section and
the ingestion metrics."""

import pytest
from drf_spectacular.generators import SchemaGenerator
from prometheus_client import REGISTRY

from documents.models import Document
from tests.documents.conftest import reload, stored_files
from tests.documents.files import make_pdf
from tests.search.test_schema import _ref, _untyped

pytestmark = pytest.mark.django_db

OPERATIONS = {
    ("/api/documents", "get"): ("200", "PaginatedDocumentList", None, ()),
    ("/api/documents", "post"): ("201", "Document", None, ("402", "413", "415")),
    ("/api/documents/{id}", "get"): ("200", "Document", None, ("404",)),
    ("/api/documents/{id}", "patch"): ("200", "Document", "DocumentUpdateInputRequest", ("403", "404")),
    ("/api/documents/{id}", "delete"): ("204", None, None, ("403", "404")),
    ("/api/documents/{id}/chunks", "get"): ("200", "PaginatedDocumentChunkList", None, ("404",)),
    ("/api/documents/{id}/reprocess", "post"): ("202", "Document", None, ("403", "404")),
    ("/api/search/documents", "post"): ("200", "DocumentSearchResults", "DocumentSearchInputRequest",
                                        ("404", "502", "503")),
}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.mark.parametrize(("path", "method"), list(OPERATIONS))
def test_every_documents_endpoint_is_documented_and_fully_typed(schema, path, method):
    status, response_component, request_component, errors = OPERATIONS[(path, method)]
    operation = schema["paths"][path][method]
    response = operation["responses"][status]
    assert _ref(response.get("content", {}).get("application/json", {}).get("schema")) == response_component
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    assert _ref(body) == request_component
    assert set(errors) <= set(operation["responses"])
    schemas = schema["components"]["schemas"]
    for component in filter(None, (response_component, request_component)):
        assert _untyped(schemas[component], schemas, component) == []


def test_the_upload_is_documented_as_multipart_with_its_file(schema):
    body = schema["paths"]["/api/documents"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data"}
    component = schema["components"]["schemas"][_ref(body["multipart/form-data"]["schema"])]
    assert component["properties"]["file"]["format"] == "binary"
    assert component["required"] == ["file"]


def test_the_reply_context_documents_its_numbered_sources(schema):
    item = schema["components"]["schemas"]["ContextItem"]["properties"]
    assert {"number", "kind", "document_id", "chunk_id", "title", "page", "snippet"} <= set(item)


def test_the_admin_lists_documents_and_reprocesses_them(admin_client, owner_client, upload):
    document_id = upload(owner_client, "guide.pdf", make_pdf(["Brand voice: warm and concrete."])).json()["id"]
    generation = reload(document_id).processing_generation

    listing = admin_client.get("/admin/documents/document/")
    assert listing.status_code == 200 and b"guide" in listing.content
    response = admin_client.post(
        "/admin/documents/document/", {"action": "reprocess", "_selected_action": [document_id]}
    )

    assert response.status_code == 302
    document = reload(document_id)
    assert document.processing_generation == generation + 1 and document.status == "pending"


def test_the_account_export_lists_the_callers_own_documents(owner_client, teammate_client, upload):
    mine = upload(owner_client, "mine.txt", b"My launch notes.").json()["id"]
    upload(teammate_client, "theirs.txt", b"Shared by Tom.", visibility="organization")

    export = owner_client.get("/api/auth/me/export")

    assert export.status_code == 200
    assert [d["id"] for d in export.json()["documents"]] == [mine]


def _sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_ingestion_is_counted_in_the_metrics(owner_client, upload):
    ready_before = _sample("raptorflow_document_ingestion_seconds_count", kind="text", outcome="ready")
    chunks_before = _sample("raptorflow_document_chunks_total", kind="text")
    failed_before = _sample("raptorflow_document_failures_total", kind="pdf", reason="password_protected")

    upload(owner_client, "notes.txt", b"Tagline: fuel the long run.")
    upload(owner_client, "locked.pdf", make_pdf(["x"], password="pw"))

    assert _sample("raptorflow_document_ingestion_seconds_count", kind="text", outcome="ready") == ready_before + 1
    assert _sample("raptorflow_document_chunks_total", kind="text") == chunks_before + 1
    assert _sample("raptorflow_document_failures_total", kind="pdf", reason="password_protected") == (
        failed_before + 1
    )
    assert Document.objects.filter(status="failed").count() == 1


def test_deleting_in_the_admin_removes_the_file_too(admin_client, owner_client, upload, storage_dir,
                                                    django_capture_on_commit_callbacks):
    document_id = upload(owner_client, "guide.txt", b"Brand voice: warm and concrete.").json()["id"]
    assert len(stored_files(storage_dir)) == 1

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/documents/document/",
            {"action": "delete_selected", "_selected_action": [document_id], "post": "yes"},
        )

    assert response.status_code == 302
    assert not Document.objects.filter(pk=document_id).exists()
    assert stored_files(storage_dir) == []
