"""Real small files made in the tests: PDFs written with pypdf (text pages, a password, images
only), DOCX and PPTX with python-docx / python-pptx, and the hostile ones (truncated, an
archive bomb, a lying extension)."""

import io
import zipfile
import zlib

from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, EncodedStreamObject, NameObject, NumberObject


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _text_stream(lines: list[str]) -> bytes:
    ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
    for line in lines:
        ops.append(f"({_escape(line)}) Tj T*")
    ops.append("ET")
    return "\n".join(ops).encode("latin-1")


_HELVETICA = DictionaryObject(
    {
        NameObject("/Type"): NameObject("/Font"),
        NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
        NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
    }
)


def make_pdf(pages: list[str], *, password: str | None = None) -> bytes:
    """A PDF with one page per item; each page's text split into lines of about 90 characters."""
    writer = PdfWriter()
    font = writer._add_object(_HELVETICA)
    for text in pages:
        page = writer.add_blank_page(612, 792)
        lines, line = [], ""
        for word in text.split():
            if len(line) + len(word) > 90:
                lines.append(line)
                line = ""
            line = f"{line} {word}".strip()
        lines.append(line)
        stream = DecodedStreamObject()
        stream.set_data(_text_stream(lines))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
    if password:
        writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_image_only_pdf(pages: int = 2) -> bytes:
    """A 'scan': each page draws one image and holds no text at all."""
    writer = PdfWriter()
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        image = DecodedStreamObject()
        image.set_data(bytes([200, 10, 10, 10, 200, 10, 10, 10, 200, 250, 250, 250]))
        image.update(
            {
                NameObject("/Type"): NameObject("/XObject"),
                NameObject("/Subtype"): NameObject("/Image"),
                NameObject("/Width"): NumberObject(2),
                NameObject("/Height"): NumberObject(2),
                NameObject("/ColorSpace"): NameObject("/DeviceRGB"),
                NameObject("/BitsPerComponent"): NumberObject(8),
            }
        )
        contents = DecodedStreamObject()
        contents.set_data(b"q 400 0 0 400 100 200 cm /Im1 Do Q")
        page[NameObject("/Contents")] = writer._add_object(contents)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/XObject"): DictionaryObject({NameObject("/Im1"): writer._add_object(image)})}
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(blocks: list[tuple[str, str]]) -> bytes:
    """blocks: ("heading", text) or ("paragraph", text)."""
    import docx

    document = docx.Document()
    for kind, text in blocks:
        if kind == "heading":
            document.add_heading(text, level=1)
        else:
            document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pptx(slides: list[tuple[str, str]]) -> bytes:
    """slides: (title, body)."""
    from pptx import Presentation

    presentation = Presentation()
    layout = presentation.slide_layouts[1]  # title and content
    for title, body in slides:
        slide = presentation.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def make_docx_bomb(unpacked_bytes: int) -> bytes:
    """A 'DOCX' whose document part unpacks to `unpacked_bytes` of one repeated byte."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = b" " * (1024 * 1024)
            for _ in range(unpacked_bytes // len(block)):
                member.write(block)
    return out.getvalue()


def make_pdf_bomb(unpacked_bytes: int) -> bytes:
    """A one-page PDF whose content stream inflates (FlateDecode) to `unpacked_bytes` of
    spaces before its one line of text."""
    squeezer = zlib.compressobj(9)
    block = b" " * (1024 * 1024)
    compressed = b"".join(squeezer.compress(block) for _ in range(unpacked_bytes // len(block)))
    compressed += squeezer.compress(_text_stream(["A decompression bomb."])) + squeezer.flush()
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    stream = EncodedStreamObject()
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    stream._data = compressed  # already encoded: written as it is, with its filter
    page[NameObject("/Contents")] = writer._add_object(stream)
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(_HELVETICA)})}
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
