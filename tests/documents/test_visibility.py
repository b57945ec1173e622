"""Who may do what with a document, on every endpoint: the uploader; a teammate (member of
the same organization) reads what is shared with the organization and nothing private, and
changes nothing that is not theirs; an admin changes shared documents; an outsider gets 404
for everything. Refusals leave every row as it was."""

import pytest

from accounts.models import Membership, Role
from documents.models import ChunkEmbedding, Document, DocumentChunk
from tests.conftest import make_client
from tests.documents.conftest import LOREM_PAGES
from tests.documents.files import make_pdf

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_doc(owner_client, upload):
    response = upload(owner_client, "private.pdf", make_pdf(["Private salary bands: senior marketer 95k."]))
    assert response.status_code == 201
    return response.json()["id"]


@pytest.fixture
def shared_doc(owner_client, upload):
    response = upload(owner_client, "guide.pdf", make_pdf(LOREM_PAGES), visibility="organization")
    assert response.status_code == 201
    return response.json()["id"]


def snapshot():
    return (
        sorted(
            Document.objects.values_list("id", "title", "visibility", "status", "processing_generation", "owner_id")
        ),
        DocumentChunk.objects.count(),
        ChunkEmbedding.objects.count(),
    )


ENDPOINTS_READ = ["", "/file", "/chunks"]


def test_the_uploader_reads_both_of_their_documents(owner_client, private_doc, shared_doc):
    listed = {d["id"] for d in owner_client.get("/api/documents").json()["results"]}
    assert listed == {private_doc, shared_doc}
    for document_id in (private_doc, shared_doc):
        for suffix in ENDPOINTS_READ:
            assert owner_client.get(f"/api/documents/{document_id}{suffix}").status_code == 200


def test_a_teammate_reads_shared_documents_and_never_private_ones(teammate_client, private_doc, shared_doc):
    listed = [d["id"] for d in teammate_client.get("/api/documents").json()["results"]]
    assert listed == [shared_doc]
    for suffix in ENDPOINTS_READ:
        assert teammate_client.get(f"/api/documents/{shared_doc}{suffix}").status_code == 200
        response = teammate_client.get(f"/api/documents/{private_doc}{suffix}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_a_teammate_changes_nothing_that_is_not_theirs(teammate_client, private_doc, shared_doc):
    before = snapshot()

    # Shared: readable, so the refusal is the role's (403); private: not even there (404).
    assert teammate_client.patch(f"/api/documents/{shared_doc}", {"title": "Mine"}, format="json").status_code == 403
    assert teammate_client.delete(f"/api/documents/{shared_doc}").status_code == 403
    assert teammate_client.post(f"/api/documents/{shared_doc}/reprocess").status_code == 403
    assert teammate_client.patch(f"/api/documents/{private_doc}", {"title": "Mine"}, format="json").status_code == 404
    assert teammate_client.delete(f"/api/documents/{private_doc}").status_code == 404
    assert teammate_client.post(f"/api/documents/{private_doc}/reprocess").status_code == 404

    assert snapshot() == before


def test_an_outsider_gets_404_on_every_endpoint_and_changes_nothing(outsider_client, private_doc, shared_doc):
    before = snapshot()
    assert outsider_client.get("/api/documents").json()["results"] == []
    for document_id in (private_doc, shared_doc):
        for suffix in ENDPOINTS_READ:
            assert outsider_client.get(f"/api/documents/{document_id}{suffix}").status_code == 404
        assert outsider_client.patch(f"/api/documents/{document_id}", {"title": "x"}, format="json").status_code == 404
        assert outsider_client.post(f"/api/documents/{document_id}/reprocess").status_code == 404
        assert outsider_client.delete(f"/api/documents/{document_id}").status_code == 404
        response = outsider_client.post(
            "/api/search/documents", {"query": "budget", "document_ids": [document_id]}, format="json"
        )
        assert response.status_code == 404
    results = outsider_client.post("/api/search/documents", {"query": "Aurora budget"}, format="json").json()
    assert results["results"] == []
    assert snapshot() == before


def test_search_finds_shared_chunks_for_a_teammate_and_private_ones_only_for_their_uploader(
    owner_client, teammate_client, private_doc, shared_doc
):
    for mode in ("vector", "hybrid"):
        mine = owner_client.post("/api/search/documents", {"query": "salary bands", "mode": mode, "limit": 50},
                                 format="json").json()["results"]
        theirs = teammate_client.post("/api/search/documents", {"query": "salary bands", "mode": mode, "limit": 50},
                                      format="json").json()["results"]
        assert private_doc in {hit["document_id"] for hit in mine}
        assert {hit["document_id"] for hit in theirs} == {shared_doc}
    response = teammate_client.post(
        "/api/search/documents", {"query": "salary", "document_ids": [private_doc]}, format="json"
    )
    assert response.status_code == 404


def test_an_admin_may_change_and_delete_a_shared_document_of_someone_else(org, teammate, shared_doc, private_doc):
    Membership.objects.filter(organization=org, user=teammate).update(role=Role.ADMIN)
    admin_client = make_client(teammate, org)

    response = admin_client.patch(f"/api/documents/{shared_doc}", {"title": "Brand guide 2027"}, format="json")
    assert response.status_code == 200
    assert Document.objects.get(pk=shared_doc).title == "Brand guide 2027"
    # Private stays private, even from an admin.
    assert admin_client.get(f"/api/documents/{private_doc}").status_code == 404

    assert admin_client.delete(f"/api/documents/{shared_doc}").status_code == 204
    assert not Document.objects.filter(pk=shared_doc).exists()


def test_making_a_document_private_hides_it_and_its_chunks_from_teammates(owner_client, teammate_client, shared_doc):
    response = owner_client.patch(f"/api/documents/{shared_doc}", {"visibility": "private"}, format="json")

    assert response.status_code == 200 and response.json()["visibility"] == "private"
    assert set(DocumentChunk.objects.filter(document_id=shared_doc).values_list("visibility", flat=True)) == {"private"}
    assert set(ChunkEmbedding.objects.filter(document_id=shared_doc).values_list("visibility", flat=True)) == {
        "private"
    }
    assert teammate_client.get(f"/api/documents/{shared_doc}").status_code == 404
    hits = teammate_client.post("/api/search/documents", {"query": "Aurora budget"}, format="json").json()
    assert hits["results"] == []


def test_uploader_filter_status_filter_and_title_search(owner_client, teammate_client, private_doc, shared_doc,
                                                        owner):
    assert [d["id"] for d in owner_client.get("/api/documents", {"visibility": "organization"}).json()["results"]] == [
        shared_doc
    ]
    assert [d["id"] for d in owner_client.get("/api/documents", {"q": "PRIV"}).json()["results"]] == [private_doc]
    assert [d["id"] for d in teammate_client.get("/api/documents", {"uploader": str(owner.pk)}).json()["results"]] == [
        shared_doc
    ]
    assert len(owner_client.get("/api/documents", {"status": "ready"}).json()["results"]) == 2
    bad = owner_client.get("/api/documents", {"status": "done"})
    assert bad.status_code == 400 and "status" in bad.json()["error"]["fields"]
    unknown = owner_client.get("/api/documents", {"owner": "x"})
    assert unknown.status_code == 400 and "owner" in unknown.json()["error"]["fields"]
