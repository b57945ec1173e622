"""The text of a document, as sections that keep where each piece came from (page or slide,
heading), read with well-kept libraries: pypdf (PDF), python-docx (DOCX), python-pptx
(PPTX), Beautiful Soup (HTML); Markdown, plain text and CSV with the standard library.

Hostile files are expected, so every reader runs under limits (settings):
- DOCX and PPTX are ZIP archives: the uncompressed sizes in the central directory are added
  up before anything is unpacked (DOCUMENT_MAX_UNPACKED_BYTES), and a member that claims an
  absurd compression ratio is refused too (an archive bomb); a PDF stream that inflates past
  pypdf's own limit (75 MB a stream) is refused as a decompression bomb;
- pages or slides beyond DOCUMENT_MAX_PAGES are refused before they are read;
- extracted text beyond DOCUMENT_MAX_TEXT_CHARS stops the reading (bounded memory);
- reading stops after DOCUMENT_PROCESSING_SECONDS, checked between pages and blocks.

Every failure is an ExtractionFailed whose message a person understands; the library's own
exception is logged, not shown.
"""

import csv
import io
import logging
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings

from documents.models import DocumentKind
from documents.sniffing import decode_text

logger = logging.getLogger(__name__)

# A deflated XML part rarely compresses better than 1:100; bombs do 1:1000 and more.
MAX_COMPRESSION_RATIO = 200


@dataclass(frozen=True)
class Section:
    text: str
    page: int | None = None
    heading: str = ""


@dataclass(frozen=True)
class Extracted:
    sections: list[Section]
    page_count: int | None


class ExtractionFailed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def corrupt(kind_label: str) -> ExtractionFailed:
    return ExtractionFailed("corrupt", f"The {kind_label} file is damaged or incomplete and cannot be read.")


class _Budget:
    """The per-document limits on time and extracted text."""

    def __init__(self):
        self.deadline = time.monotonic() + settings.DOCUMENT_PROCESSING_SECONDS
        self.chars = 0

    def take(self, text: str) -> str:
        if time.monotonic() > self.deadline:
            raise ExtractionFailed(
                "too_slow", f"Reading the document took longer than {settings.DOCUMENT_PROCESSING_SECONDS} seconds."
            )
        self.chars += len(text)
        if self.chars > settings.DOCUMENT_MAX_TEXT_CHARS:
            raise ExtractionFailed(
                "too_much_text",
                f"The document holds more than {settings.DOCUMENT_MAX_TEXT_CHARS} characters of text; split it.",
            )
        return text


def extract(path: str, kind: str) -> Extracted:
    budget = _Budget()
    readers = {
        DocumentKind.PDF: _pdf,
        DocumentKind.DOCX: _docx,
        DocumentKind.PPTX: _pptx,
        DocumentKind.HTML: _html,
        DocumentKind.MARKDOWN: _markdown,
        DocumentKind.TEXT: _text,
        DocumentKind.CSV: _csv,
    }
    extracted = readers[kind](path, budget)
    sections = [s for s in extracted.sections if s.text.strip()]
    if not sections:
        if kind == DocumentKind.PDF:
            raise ExtractionFailed(
                "no_text",
                "No text could be extracted: the PDF holds only images (a scan?). Upload a PDF with a text layer.",
            )
        raise ExtractionFailed("no_text", "The document holds no text.")
    return Extracted(sections=sections, page_count=extracted.page_count)


# --- PDF -------------------------------------------------------------------------------


def _pdf(path: str, budget: _Budget) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PdfReadError, PdfStreamError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            # Many PDFs are encrypted with an empty user password (only editing is locked).
            try:
                opened = reader.decrypt("")
            except (NotImplementedError, FileNotDecryptedError, PdfReadError):
                opened = 0
            if not opened:
                raise ExtractionFailed(
                    "password_protected",
                    "The PDF is password-protected. Upload a copy without a password.",
                )
        count = len(reader.pages)
        _check_pages(count, "pages")
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            sections.append(Section(text=budget.take(page.extract_text() or ""), page=number))
    except ExtractionFailed:
        raise
    except LimitReachedError as exc:
        # pypdf stops inflating a stream past its own limit (75 MB): memory stays bounded.
        logger.info("PDF stream past pypdf's limit: %r", exc)
        raise ExtractionFailed(
            "too_large_unpacked",
            "The PDF file is too large once unpacked (a compressed stream inflates past pypdf's limit), "
            "or it is a decompression bomb.",
        ) from None
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError,
            FileNotDecryptedError) as exc:
        logger.info("Unreadable PDF: %r", exc)
        raise corrupt("PDF") from None
    return Extracted(sections=sections, page_count=count)


def _check_pages(count: int, what: str) -> None:
    if count > settings.DOCUMENT_MAX_PAGES:
        raise ExtractionFailed(
            "too_many_pages", f"The document has {count} {what}; at most {settings.DOCUMENT_MAX_PAGES} are read."
        )


# --- Office (DOCX, PPTX) ---------------------------------------------------------------


def _check_archive(path: str, kind_label: str) -> None:
    """Refuses an archive that would unpack too large, from its central directory alone."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise corrupt(kind_label) from None
    total = sum(member.file_size for member in members)
    limit = settings.DOCUMENT_MAX_UNPACKED_BYTES
    bomb = any(
        member.file_size > 1024 * 1024 and member.file_size > MAX_COMPRESSION_RATIO * max(member.compress_size, 1)
        for member in members
    )
    if total > limit or bomb:
        raise ExtractionFailed(
            "too_large_unpacked",
            f"The {kind_label} file is too large once unpacked ({total} bytes; the limit is {limit}), "
            "or it is an archive bomb.",
        )


def _docx(path: str, budget: _Budget) -> Extracted:
    _check_archive(path, "Word")
    import docx
    from docx.document import Document as DocxDocument
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document: DocxDocument = docx.Document(path)
        sections: list[Section] = []
        heading, lines = "", []

        def flush():
            if lines:
                sections.append(Section(text="\n".join(lines), heading=heading))
                lines.clear()

        for block in document.iter_inner_content():
            if isinstance(block, Paragraph):
                text = budget.take(block.text.strip())
                style = (block.style.name if block.style is not None else "") or ""
                if text and (style.startswith("Heading") or style == "Title"):
                    flush()
                    heading = text[:500]
                elif text:
                    lines.append(text)
            elif isinstance(block, Table):
                for row in block.rows:
                    cells = [budget.take(cell.text.strip()) for cell in row.cells]
                    if any(cells):
                        lines.append(" | ".join(cells))
        flush()
    except ExtractionFailed:
        raise
    except Exception as exc:  # python-docx raises many types (lxml, KeyError, zip) on damaged files
        logger.info("Unreadable DOCX: %r", exc)
        raise corrupt("Word") from None
    return Extracted(sections=sections, page_count=None)


def _pptx(path: str, budget: _Budget) -> Extracted:
    _check_archive(path, "PowerPoint")
    from pptx import Presentation

    try:
        presentation = Presentation(path)
        slides = list(presentation.slides)
        _check_pages(len(slides), "slides")
        sections = []
        for number, slide in enumerate(slides, start=1):
            title_shape = slide.shapes.title
            has_title = title_shape is not None and title_shape.has_text_frame
            title = title_shape.text_frame.text.strip() if has_title else ""
            lines = []
            for shape in slide.shapes:
                if title_shape is not None and shape.shape_id == title_shape.shape_id:
                    continue
                if shape.has_text_frame:
                    lines.extend(p.strip() for p in shape.text_frame.text.splitlines() if p.strip())
                if getattr(shape, "has_table", False) and shape.has_table:
                    for row in shape.table.rows:
                        lines.append(" | ".join(cell.text.strip() for cell in row.cells))
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame.text.strip()
                if notes:
                    lines.append(notes)
            text = budget.take("\n".join(lines) or title)
            sections.append(Section(text=text, page=number, heading=title[:500]))
    except ExtractionFailed:
        raise
    except Exception as exc:  # python-pptx, like python-docx, raises many types on damaged files
        logger.info("Unreadable PPTX: %r", exc)
        raise corrupt("PowerPoint") from None
    return Extracted(sections=sections, page_count=len(slides))


# --- text formats ----------------------------------------------------------------------


def _read_text(path: str, kind_label: str) -> str:
    with open(path, "rb") as handle:
        data = handle.read()
    text = decode_text(data)
    if text is None:
        raise corrupt(kind_label)
    # decode_text tolerates a cut character at the end (it also reads prefixes).
    return text


_HEADING_LINE = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _markdown_sections(text: str, budget: _Budget) -> list[Section]:
    """Sections split at ATX headings (`# …`), headings inside code fences excepted."""
    sections, heading, lines, fenced = [], "", [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        match = None if fenced else _HEADING_LINE.match(line)
        if match:
            if lines:
                sections.append(Section(text=budget.take("\n".join(lines)), heading=heading))
            heading, lines = match.group(2)[:500], []
        else:
            lines.append(line)
    if lines:
        sections.append(Section(text=budget.take("\n".join(lines)), heading=heading))
    return sections


def _markdown(path: str, budget: _Budget) -> Extracted:
    return Extracted(sections=_markdown_sections(_read_text(path, "Markdown"), budget), page_count=None)


def _text(path: str, budget: _Budget) -> Extracted:
    return Extracted(sections=[Section(text=budget.take(_read_text(path, "text")))], page_count=None)


def _html(path: str, budget: _Budget) -> Extracted:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_read_text(path, "HTML"), "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "iframe", "svg", "head"]):
        tag.decompose()
    # Headings become Markdown headings, so the sections keep them like Markdown's do.
    for tag in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        level = int(tag.name[1])
        title = " ".join(tag.get_text(" ").split())
        tag.replace_with(f"\n{'#' * level} {title}\n")
    text = soup.get_text("\n")
    text = re.sub(r"\n\s*\n+", "\n\n", text)
    return Extracted(sections=_markdown_sections(text, budget), page_count=None)


def _csv(path: str, budget: _Budget) -> Extracted:
    """Each row as `column: value` pairs named by the header row, one row per line, so a
    chunk of rows still says what each value is."""
    text = _read_text(path, "CSV")
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows: Iterator[list[str]] = csv.reader(io.StringIO(text), dialect)
    try:
        header = [name.strip() for name in next(rows, [])]
        lines = []
        for row in rows:
            if not any(cell.strip() for cell in row):
                continue
            pairs = [
                f"{header[i] if i < len(header) and header[i] else f'column {i + 1}'}: {cell.strip()}"
                for i, cell in enumerate(row)
                if cell.strip()
            ]
            lines.append(budget.take("; ".join(pairs)))
    except csv.Error as exc:
        logger.info("Unreadable CSV: %r", exc)
        raise corrupt("CSV") from None
    return Extracted(sections=[Section(text="\n".join(lines), heading=", ".join(h for h in header if h)[:500])],
                     page_count=None)
