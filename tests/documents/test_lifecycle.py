"""What happens to a document over its life: deleting removes file, chunks and vectors; people
and organizations going take the right documents with them; an embedding outage during
processing leaves the document failed with nothing half-written, and reprocess recovers it;
backfill and reindex cover the chunks; the file is served so it can never run."""

import io
import json

import httpx
import pytest
from django.core.management import call_command

from accounts.models import Membership, Role
from accounts.services.account_deletion import account_delete
from accounts.services.members import membership_remove
from accounts.services.organizations import unscoped_organization_remove
from documents import services
from documents.chunking import _local_tokenizer, token_counter
from documents.models import ChunkEmbedding, Document, DocumentChunk
from documents.search_plan import CHUNK_VECTORS
from documents.tasks import ingest_document
from raptorflow import hooks
from search import vector_index
from search.models import ActiveEmbeddingModel
from search.providers import active_spec
from tests.documents.conftest import LOREM_PAGES, reload, stored_files
from tests.documents.files import make_pdf

pytestmark = pytest.mark.django_db

OPENAI_EMBEDDINGS = "https://api.openai.com/v1/embeddings"
OPENAI_DOWN = httpx.Response(503, json={"error": {"message": "down"}})


def openai_ok(request):
    inputs = json.loads(request.content)["input"]
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": [0.1 + i] * 1536} for i in range(len(inputs))],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        },
    )


def run(command, *args):
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def guide(owner_client, upload):
    response = upload(owner_client, "guide.pdf", make_pdf(LOREM_PAGES), visibility="organization")
    assert reload(response.json()["id"]).status == "ready"
    return response.json()["id"]


def test_deleting_a_document_removes_its_file_chunks_and_vectors(owner_client, guide, storage_dir,
                                                                 django_capture_on_commit_callbacks):
    assert len(stored_files(storage_dir)) == 1 and DocumentChunk.objects.exists()

    # The file goes once the deletion commits (a rollback keeps it).
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.delete(f"/api/documents/{guide}")

    assert response.status_code == 204
    assert not Document.objects.filter(pk=guide).exists()
    assert not DocumentChunk.objects.exists() and not ChunkEmbedding.objects.exists()
    assert stored_files(storage_dir) == []
    assert owner_client.get(f"/api/documents/{guide}").status_code == 404


def test_deleting_the_organization_removes_all_of_its_documents(owner, org, guide, owner_client, upload,
                                                                storage_dir, django_capture_on_commit_callbacks):
    upload(owner_client, "mine.txt", b"My own notes about the launch.")
    assert len(stored_files(storage_dir)) == 2

    with django_capture_on_commit_callbacks(execute=True):
        hooks.organization_deleting(org)
        unscoped_organization_remove(org, actor=owner, reason="test")

    assert not Document.objects.exists() and not DocumentChunk.objects.exists()
    assert not ChunkEmbedding.objects.exists()
    assert stored_files(storage_dir) == []


def test_a_leaving_member_takes_their_private_documents_and_leaves_shared_ones(org, teammate, upload,
                                                                              teammate_client, owner_client):
    shared = upload(teammate_client, "shared.txt", b"Team-wide launch checklist.", visibility="organization")
    private = upload(teammate_client, "private.txt", b"My interview notes.")
    manager = Membership.objects.get(organization=org, role=Role.OWNER)
    target = Membership.objects.get(organization=org, user=teammate)

    membership_remove(actor=manager, target=target)

    assert not Document.objects.filter(pk=private.json()["id"]).exists()
    assert Document.objects.filter(pk=shared.json()["id"]).exists()
    assert owner_client.get(f"/api/documents/{shared.json()['id']}").status_code == 200


def test_deleting_an_account_keeps_its_shared_documents_with_the_organization(
    org, teammate, upload, teammate_client, owner_client, storage_dir, django_capture_on_commit_callbacks
):
    shared = upload(teammate_client, "shared.txt", b"Team-wide launch checklist.", visibility="organization")
    private = upload(teammate_client, "private.txt", b"My interview notes.")

    with django_capture_on_commit_callbacks(execute=True):
        account_delete(user=teammate)

    assert not Document.objects.filter(pk=private.json()["id"]).exists()
    kept = Document.objects.get(pk=shared.json()["id"])
    assert kept.owner_id is None and kept.visibility == "organization"
    assert set(ChunkEmbedding.objects.values_list("owner_id", flat=True)) == {None}
    assert owner_client.get(f"/api/documents/{kept.id}").json()["uploader_id"] is None
    # The teammate's personal organization had nothing; the private file is gone, the shared one stays.
    assert [p.parent.name for p in stored_files(storage_dir)] == [str(kept.id)]


def test_an_embedding_outage_during_processing_fails_the_document_with_nothing_half_written(
    settings, respx_mock, owner_client, upload, monkeypatch
):
    settings.EMBEDDING_PROVIDER = "openai"
    settings.OPENAI_API_KEY = "sk-test"
    monkeypatch.setattr(services, "EMBED_BATCH", 1)  # one provider call per chunk
    route = respx_mock.post(OPENAI_EMBEDDINGS).mock(side_effect=[openai_ok, openai_ok, OPENAI_DOWN])

    response = upload(owner_client, "guide.pdf", make_pdf(LOREM_PAGES))

    document = reload(response.json()["id"])
    assert route.call_count == 3
    assert (document.status, document.error_code) == ("failed", "embedding_unavailable")
    assert "Reprocess" in document.error
    assert document.chunks_done == 0
    assert not DocumentChunk.objects.exists() and not ChunkEmbedding.objects.exists()

    # The provider is back: reprocess makes it whole.
    respx_mock.post(OPENAI_EMBEDDINGS).mock(side_effect=openai_ok)
    reprocess = owner_client.post(f"/api/documents/{document.id}/reprocess")
    assert reprocess.status_code == 202 and reprocess.json()["status"] == "pending"
    # The job runs once the reprocess commits; here it is run as the worker would.
    ingest_document(str(document.id), reload(document.id).processing_generation)
    document = reload(document.id)
    assert document.status == "ready" and document.embedding_model == "text-embedding-3-small"
    assert ChunkEmbedding.objects.filter(model="text-embedding-3-small").count() == document.chunks_total > 0


def test_a_job_overtaken_by_a_reprocess_request_changes_nothing(owner_client, guide):
    document = reload(guide)
    old_generation = document.processing_generation
    owner_client.post(f"/api/documents/{guide}/reprocess")
    chunks_before = sorted(DocumentChunk.objects.values_list("id", flat=True))

    assert ingest_document(str(guide), old_generation) == "stale"
    assert sorted(DocumentChunk.objects.values_list("id", flat=True)) == chunks_before
    assert reload(guide).status == "pending"


def test_backfill_and_reindex_cover_document_chunks(settings, respx_mock, owner_client, guide):
    chunk_count = DocumentChunk.objects.count()
    ChunkEmbedding.objects.all().delete()

    out = run("backfill_embeddings")
    assert f"Document chunks: {chunk_count} embedded with all-MiniLM-L6-v2-int8, 0 remaining." in out
    assert ChunkEmbedding.objects.count() == chunk_count

    settings.OPENAI_API_KEY = "sk-test"
    respx_mock.post(OPENAI_EMBEDDINGS).mock(side_effect=openai_ok)
    out = run("reindex_embeddings", "--model", "text-embedding-3-small", "--batch-size", "4")

    assert ActiveEmbeddingModel.objects.get().model == "text-embedding-3-small"
    assert set(ChunkEmbedding.objects.values_list("model", flat=True)) == {"text-embedding-3-small"}
    assert ChunkEmbedding.objects.count() == chunk_count
    assert vector_index.index_exists("text-embedding-3-small", table=CHUNK_VECTORS)
    assert not vector_index.index_exists("all-MiniLM-L6-v2-int8", table=CHUNK_VECTORS)
    response = owner_client.post("/api/search/documents", {"query": "Aurora budget"}, format="json")
    assert response.status_code == 200
    assert response.json()["model"] == "text-embedding-3-small" and response.json()["results"]


def test_no_chunk_exceeds_the_embedding_models_window(owner_client, upload):
    long_text = " ".join(f"Sentence {i} describes campaign asset number {i} in plain words." for i in range(1500))
    document = reload(upload(owner_client, "long.md", f"# Assets\n\n{long_text}\n".encode()).json()["id"])

    counter = token_counter(active_spec())
    chunks = list(DocumentChunk.objects.filter(document=document))
    assert document.status == "ready" and len(chunks) > 10
    # Counted with the model's own tokenizer, [CLS] and [SEP] included: the provider would
    # truncate anything past its max_seq_length.
    tokenizer, max_seq_length = _local_tokenizer(active_spec().model)
    for chunk in chunks:
        embedded = f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text
        assert len(tokenizer.encode(embedded).ids) <= max_seq_length
        assert chunk.token_count <= counter.window
    # Neighbours overlap: the end of one chunk starts the next.
    ordered = sorted(chunks, key=lambda c: c.index)
    assert any(b.char_start < a.char_end for a, b in zip(ordered, ordered[1:], strict=False))


def test_the_file_is_served_as_an_attachment_that_cannot_run(owner_client, upload):
    html = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script><p>Hi</p></body></html>"
    document_id = upload(owner_client, "page.html", html).json()["id"]

    response = owner_client.get(f"/api/documents/{document_id}/file")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == html
    assert response["Content-Disposition"].startswith("attachment;") and "page.html" in response["Content-Disposition"]
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert "default-src 'none'" in response["Content-Security-Policy"]
