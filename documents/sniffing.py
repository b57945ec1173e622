"""What an uploaded file really is, told from its bytes, never from its name or the
Content-Type the client sent (both are the client's word, and an extension can lie).

- Binary formats by signature: PDF by its `%PDF-` header; DOCX and PPTX are ZIP archives, so
  a ZIP is opened (its central directory only, nothing is unpacked) and told apart by the
  part every such package must hold (`word/document.xml`, `ppt/presentation.xml`). Anything
  else that the `filetype` library recognises (images, audio, other archives, executables) is
  refused by name: it is a small, dependency-free, well-kept signature table, so we do not
  keep our own list of the formats we refuse.
- Text formats have no signature: a file that decodes as text (UTF-8, or UTF-16 with its
  byte-order mark) and holds no NUL or other control bytes is text; then HTML when it starts
  like an HTML document (whatever its name), Markdown or CSV when its name says so, else
  plain text. The name only chooses between readings of text that is text anyway.

Unsupported is a 415 before anything is stored (documents.services).
"""

import codecs
import zipfile
from dataclasses import dataclass
from pathlib import PurePath

import filetype

from documents.models import DocumentKind

SNIFF_BYTES = 64 * 1024

CONTENT_TYPES = {
    DocumentKind.PDF: "application/pdf",
    DocumentKind.DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    DocumentKind.PPTX: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    DocumentKind.HTML: "text/html",
    DocumentKind.MARKDOWN: "text/markdown",
    DocumentKind.TEXT: "text/plain",
    DocumentKind.CSV: "text/csv",
}

SUPPORTED = "PDF, DOCX, PPTX, HTML, Markdown, plain text or CSV"

_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body")
_MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown", ".mkd"}
_CSV_SUFFIXES = {".csv"}
# Bytes that never occur in text: C0 controls other than tab, newline, form feed, carriage return.
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13))


class Unsupported(Exception):
    """The file is not one of the supported types; the message says what it looks like."""


@dataclass(frozen=True)
class Sniffed:
    kind: str
    content_type: str


def sniff(path: str, filename: str) -> Sniffed:
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head:
        raise Unsupported("The file is empty.")
    kind = _binary_kind(path, head)
    if kind is None:
        kind = _text_kind(head, filename)
    return Sniffed(kind=kind, content_type=CONTENT_TYPES[kind])


def _binary_kind(path: str, head: bytes) -> str | None:
    if head.lstrip(b"\x00\t\n\r ")[:5] == b"%PDF-":
        return DocumentKind.PDF
    if head[:4] == b"PK\x03\x04":
        return _office_kind(path)
    guessed = filetype.guess(head)
    if guessed is not None:
        raise Unsupported(f"This file is {guessed.mime}, which cannot be read as a document; upload {SUPPORTED}.")
    return None


def _office_kind(path: str) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise Unsupported(f"This file is a damaged ZIP archive; upload {SUPPORTED}.") from None
    if "word/document.xml" in names:
        return DocumentKind.DOCX
    if "ppt/presentation.xml" in names:
        return DocumentKind.PPTX
    raise Unsupported(f"This file is a ZIP archive, not a Word or PowerPoint document; upload {SUPPORTED}.")


def decode_text(data: bytes) -> str | None:
    """The text of `data` (UTF-8, or UTF-16 with a byte-order mark), or None when it is
    not text. A multi-byte character cut at the end (a sniffed prefix) is tolerated."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        decoder = codecs.getincrementaldecoder("utf-16")()
    else:
        if any(byte in _CONTROL for byte in data[:SNIFF_BYTES]) or b"\x00" in data:
            return None
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        text = decoder.decode(data, final=False)
    except UnicodeDecodeError:
        return None
    if any(ch in text for ch in "\x00"):
        return None
    return text


def _text_kind(head: bytes, filename: str) -> str:
    text = decode_text(head)
    if text is None:
        raise Unsupported(f"This file is neither text nor a document format RaptorFlow reads; upload {SUPPORTED}.")
    start = text.lstrip("\ufeff \t\r\n").lower().encode()
    if start.startswith(_HTML_STARTS):
        return DocumentKind.HTML
    suffix = PurePath(filename or "").suffix.lower()
    if suffix in _MARKDOWN_SUFFIXES:
        return DocumentKind.MARKDOWN
    if suffix in _CSV_SUFFIXES:
        return DocumentKind.CSV
    if suffix in {".html", ".htm"}:
        return DocumentKind.HTML
    return DocumentKind.TEXT
