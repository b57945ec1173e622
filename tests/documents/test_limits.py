"""Limits of the upload endpoint and the plan's document quotas: too large is a 413, the wrong
body a 415 or 400 naming the field, over quota a 402 with `limit`; none of them stores a
row or a file. Only POST /api/documents takes multipart or more than the 1 MB JSON limit.
Identical bytes come back as the existing document only when the uploader can read it."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from billing.models import FREE_PLAN_CODE, Plan
from documents.models import Document
from tests.documents.conftest import stored_files
from tests.documents.files import make_pdf

pytestmark = pytest.mark.django_db


def nothing_stored(storage_dir):
    return not Document.objects.exists() and stored_files(storage_dir) == []


def test_a_file_over_document_max_bytes_is_a_413_with_nothing_stored(settings, owner_client, upload, storage_dir):
    settings.DOCUMENT_MAX_BYTES = 4096

    response = upload(owner_client, "big.txt", b"word " * 2000)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert response.json()["error"]["limit"] == 4096
    assert nothing_stored(storage_dir)


def test_a_declared_body_over_the_upload_limit_is_refused_before_it_is_read(settings, owner_client, storage_dir):
    settings.REQUEST_BODY_LIMITS_BY_PATH = {"/api/documents": 10_000}

    response = owner_client.generic(
        "POST", "/api/documents", b"x" * 10_001, content_type="multipart/form-data; boundary=zzz"
    )

    assert response.status_code == 413
    assert nothing_stored(storage_dir)


def test_every_other_endpoint_keeps_the_one_megabyte_json_limit(owner_client):
    body = json.dumps({"title": "x" * (1024 * 1024 + 10), "agent_type": "general"})

    response = owner_client.generic("POST", "/api/conversations", body, content_type="application/json")

    assert response.status_code == 413


def test_json_is_not_accepted_by_the_upload_and_multipart_not_elsewhere(owner_client):
    response = owner_client.post("/api/documents", {"title": "x"}, format="json")
    assert response.status_code == 415

    response = owner_client.post(
        "/api/conversations", {"title": "x", "agent_type": "general", "file": SimpleUploadedFile("a.txt", b"hi")},
        format="multipart",
    )
    assert response.status_code == 415


def test_missing_file_bad_visibility_and_unknown_fields_are_400s_naming_them(owner_client, storage_dir):
    response = owner_client.post("/api/documents", {"title": "no file"}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["error"]["fields"]

    response = owner_client.post(
        "/api/documents",
        {"file": SimpleUploadedFile("a.txt", b"hello"), "visibility": "public", "owner": "someone"},
        format="multipart",
    )
    fields = response.json()["error"]["fields"]
    assert response.status_code == 400 and {"visibility", "owner"} <= set(fields)

    response = owner_client.post("/api/documents", {"file": SimpleUploadedFile("a.txt", b"")}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["error"]["fields"]
    assert nothing_stored(storage_dir)


def test_the_same_bytes_twice_return_the_first_document(owner_client, upload):
    content = make_pdf(["Positioning statement for the bar."])
    first = upload(owner_client, "a.pdf", content)
    second = upload(owner_client, "copy.pdf", content, title="Another title")

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    assert Document.objects.count() == 1


def test_a_teammate_gets_their_own_copy_of_bytes_they_cannot_read(owner_client, teammate_client, upload):
    content = b"Quarterly numbers that only Olivia may read."
    private = upload(owner_client, "q.txt", content)
    theirs = upload(teammate_client, "q.txt", content)

    assert theirs.status_code == 201 and theirs.json()["id"] != private.json()["id"]
    shared = upload(owner_client, "shared.txt", b"Everyone may read this.", visibility="organization")
    again = upload(teammate_client, "mine.txt", b"Everyone may read this.")
    assert again.status_code == 200 and again.json()["id"] == shared.json()["id"]


def test_past_the_plans_document_count_an_upload_is_402_with_nothing_stored(
    settings, owner_client, upload, storage_dir
):
    settings.FREE_PLAN_DOCUMENTS = 2
    Plan.objects.filter(code=FREE_PLAN_CODE).update(document_quota=None)
    upload(owner_client, "1.txt", b"one")
    upload(owner_client, "2.txt", b"two")
    files_before = stored_files(storage_dir)

    response = upload(owner_client, "3.txt", b"three")

    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["code"], error["limit"], error["quota"]) == ("quota_exceeded", 2, "documents")
    assert Document.objects.count() == 2 and stored_files(storage_dir) == files_before


def test_past_the_plans_stored_bytes_an_upload_is_402(owner_client, upload, storage_dir):
    Plan.objects.filter(code=FREE_PLAN_CODE).update(document_bytes_quota=100)
    assert upload(owner_client, "small.txt", b"x" * 60).status_code == 201

    response = upload(owner_client, "more.txt", b"y" * 60)

    assert response.status_code == 402
    assert (response.json()["error"]["limit"], response.json()["error"]["quota"]) == (100, "document_bytes")
    assert Document.objects.count() == 1 and len(stored_files(storage_dir)) == 1
