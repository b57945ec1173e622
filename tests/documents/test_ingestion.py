"""Real files of every supported type, and hostile ones, each reaching the right status or
error: ready with chunks that keep page and heading, or failed with a message a person
understands, or refused at upload (415) with nothing stored."""

import csv
import io

import pytest

from documents.models import ChunkEmbedding, Document, DocumentChunk
from tests.documents.conftest import LOREM_PAGES, reload, stored_files
from tests.documents.files import (
    PNG_1PX,
    make_docx,
    make_docx_bomb,
    make_image_only_pdf,
    make_pdf,
    make_pdf_bomb,
    make_pptx,
)

pytestmark = pytest.mark.django_db


def chunks_of(document_id):
    return list(DocumentChunk.objects.filter(document_id=document_id).order_by("index"))


def test_a_pdf_of_several_pages_becomes_ready_with_chunks_per_page(owner_client, upload):
    response = upload(owner_client, "brand-guide.pdf", make_pdf(LOREM_PAGES), title="Brand guide")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["kind"], body["title"], body["visibility"]) == ("pending", "pdf", "Brand guide",
                                                                                  "private")
    document = reload(body["id"])
    assert document.status == "ready", document.error
    assert document.page_count == 5
    chunks = chunks_of(document.id)
    assert {chunk.page for chunk in chunks} == {1, 2, 3, 4, 5}
    assert "42,000 euros" in next(chunk.text for chunk in chunks if chunk.page == 3)
    assert (document.chunks_done, document.chunks_total) == (len(chunks), len(chunks))
    assert ChunkEmbedding.objects.filter(document_id=document.id, model="all-MiniLM-L6-v2-int8").count() == len(chunks)

    shown = owner_client.get(f"/api/documents/{document.id}").json()
    assert shown["status"] == "ready"
    assert shown["progress"] == {"chunks_done": len(chunks), "chunks_total": len(chunks)}
    assert shown["page_count"] == 5 and shown["error"] is None


def test_a_docx_keeps_its_headings(owner_client, upload):
    content = make_docx(
        [
            ("heading", "Launch plan"),
            ("paragraph", "We launch the vegan protein bar in March with running clubs."),
            ("heading", "Pricing"),
            ("paragraph", "The bar sells at 2.49 euros, with a 20 percent launch discount."),
        ]
    )
    response = upload(owner_client, "plan.docx", content)

    document = reload(response.json()["id"])
    assert (document.kind, document.status) == ("docx", "ready")
    pricing = next(chunk for chunk in chunks_of(document.id) if "2.49" in chunk.text)
    assert pricing.heading == "Pricing" and pricing.page is None


def test_a_pptx_cites_slides_as_pages(owner_client, upload):
    content = make_pptx([("Q3 results", "Signups grew 38 percent."), ("Next quarter", "Double down on podcasts.")])
    response = upload(owner_client, "review.pptx", content)

    document = reload(response.json()["id"])
    assert (document.kind, document.status, document.page_count) == ("pptx", "ready", 2)
    podcasts = next(chunk for chunk in chunks_of(document.id) if "podcasts" in chunk.text)
    assert (podcasts.page, podcasts.heading) == (2, "Next quarter")


def test_html_is_read_as_text_without_its_scripts(owner_client, upload):
    html = (
        b"<!DOCTYPE html><html><head><title>x</title><script>alert('owned')</script></head><body>"
        b"<h1>Newsletter</h1><p>Open rates rose to 41 percent in May.</p>"
        b"<h2>Subject lines</h2><p>Questions beat statements by 9 points.</p></body></html>"
    )
    response = upload(owner_client, "newsletter.html", html)

    document = reload(response.json()["id"])
    assert (document.kind, document.status) == ("html", "ready")
    chunks = chunks_of(document.id)
    assert not any("alert" in chunk.text for chunk in chunks)
    subject = next(chunk for chunk in chunks if "Questions beat" in chunk.text)
    assert subject.heading == "Subject lines"


def test_markdown_text_and_csv_are_read(owner_client, upload):
    markdown = b"# Personas\n\n## Runner Rita\n\nRita runs 40 km a week and reads labels.\n"
    text = b"Plain notes: the tagline is 'Fuel the long run'.\n"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerows([["channel", "spend", "signups"], ["instagram", "1200", "310"], ["podcasts", "800", "95"]])

    md = reload(upload(owner_client, "personas.md", markdown).json()["id"])
    txt = reload(upload(owner_client, "notes.txt", text).json()["id"])
    table = reload(upload(owner_client, "spend.csv", out.getvalue().encode()).json()["id"])

    assert (md.kind, md.status) == ("markdown", "ready")
    assert chunks_of(md.id)[0].heading == "Runner Rita"
    assert (txt.kind, txt.status) == ("text", "ready")
    assert (table.kind, table.status) == ("csv", "ready")
    assert "channel: podcasts; spend: 800; signups: 95" in chunks_of(table.id)[0].text


def test_a_password_protected_pdf_fails_with_a_clear_message(owner_client, upload):
    response = upload(owner_client, "secret.pdf", make_pdf(["Confidential numbers"], password="hunter2"))

    assert response.status_code == 201
    document = reload(response.json()["id"])
    assert (document.status, document.error_code) == ("failed", "password_protected")
    assert "password-protected" in document.error
    assert not DocumentChunk.objects.filter(document=document).exists()
    shown = owner_client.get(f"/api/documents/{document.id}").json()
    assert (shown["status"], shown["error_code"]) == ("failed", "password_protected")


def test_a_pdf_of_images_only_fails_as_having_no_text(owner_client, upload):
    document = reload(upload(owner_client, "scan.pdf", make_image_only_pdf()).json()["id"])

    assert (document.status, document.error_code) == ("failed", "no_text")
    assert "only images" in document.error


def test_a_truncated_pdf_fails_as_corrupt(owner_client, upload):
    content = make_pdf(LOREM_PAGES)
    document = reload(upload(owner_client, "cut.pdf", content[: len(content) // 3]).json()["id"])

    assert document.status == "failed"
    assert document.error_code in {"corrupt", "no_text"}
    assert document.error


def test_a_truncated_docx_is_refused_as_a_damaged_archive(owner_client, upload, storage_dir):
    content = make_docx([("paragraph", "Hello")])

    response = upload(owner_client, "cut.docx", content[: len(content) // 2])

    # A ZIP whose central directory is cut off cannot even be told apart: refused as such.
    assert response.status_code == 415, response.json()
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert not Document.objects.exists() and stored_files(storage_dir) == []


def test_an_archive_bomb_fails_as_too_large_once_unpacked(owner_client, upload, settings):
    settings.DOCUMENT_MAX_UNPACKED_BYTES = 10 * 1024 * 1024
    content = make_docx_bomb(64 * 1024 * 1024)
    assert len(content) < 200 * 1024

    document = reload(upload(owner_client, "bomb.docx", content).json()["id"])

    assert (document.status, document.error_code) == ("failed", "too_large_unpacked")
    assert "too large once unpacked" in document.error


def test_a_pdf_decompression_bomb_fails_as_too_large_once_unpacked(owner_client, upload):
    content = make_pdf_bomb(100 * 1024 * 1024)
    assert len(content) < 200 * 1024

    document = reload(upload(owner_client, "bomb.pdf", content).json()["id"])

    assert (document.status, document.error_code) == ("failed", "too_large_unpacked")
    assert "decompression bomb" in document.error
    assert not document.chunks.exists()


def test_a_pdf_named_docx_is_read_as_the_pdf_it_is(owner_client, upload):
    document = reload(upload(owner_client, "report.docx", make_pdf(["Quarterly report: churn fell to 2 percent."]))
                      .json()["id"])

    assert (document.kind, document.content_type, document.status) == ("pdf", "application/pdf", "ready")
    assert document.filename == "report.docx"


def test_an_image_named_txt_is_refused_with_nothing_stored(owner_client, upload, storage_dir):
    response = upload(owner_client, "notes.txt", PNG_1PX)

    assert response.status_code == 415
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "image/png" in error["message"]
    assert not Document.objects.exists()
    assert stored_files(storage_dir) == []


def test_too_many_pages_fail_before_they_are_read(owner_client, upload, settings):
    settings.DOCUMENT_MAX_PAGES = 3

    document = reload(upload(owner_client, "long.pdf", make_pdf(LOREM_PAGES)).json()["id"])

    assert (document.status, document.error_code) == ("failed", "too_many_pages")
    assert "5 pages" in document.error
