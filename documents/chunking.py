"""Splitting extracted sections into chunks that fit the active embedding model's window,
counted with that model's own tokenizer, with overlap, keeping page and heading.

The splitting itself is semchunk's (it cuts at the largest boundary that fits: paragraphs,
then lines, sentences, words; every chunk it returns is at most `chunk_size` by the
counter it is given, and it reports each chunk's character offsets). What is ours is the
counter and the window:

- local (all-MiniLM-L6-v2, ONNX): the model's own WordPiece tokenizer (tokenizer.json next
  to the ONNX file), window = its max_seq_length (256) less the [CLS] and [SEP] it adds; the
  provider truncates past that, so a longer chunk would be embedded only in part.
- openai / gemini: their tokenizers are not available offline (tiktoken downloads its
  tables), so the counter is the text's UTF-8 length, a safe upper bound: their byte-level
  BPE (OpenAI) and byte-fallback SentencePiece (Gemini) never make more tokens than bytes.
  Windows: 8,191 tokens (text-embedding-3-*), 2,048 (gemini-embedding-001).

A chunk never crosses a section (so its page is exact), and the text embedded is the
heading, a newline and the chunk: the heading's tokens count against the window too.
"""

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass

import semchunk
from django.conf import settings

from documents.extraction import Section
from search.providers import EmbeddingSpec

# Characters per token for the hosted models' chunk size (English prose is ~4).
HOSTED_CHARS_PER_TOKEN = 4
HOSTED_WINDOWS = {"openai": 8191, "gemini": 2048}
# The smallest room left for text next to a long heading.
MIN_TEXT_TOKENS = 32


@dataclass(frozen=True)
class TokenCounter:
    name: str
    count: Callable[[str], int]
    # The most the model reads of one input, in this counter's units.
    window: int
    # What a chunk aims at, in this counter's units (at most the window).
    chunk_size: int
    overlap: int


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    page: int | None
    heading: str
    char_start: int
    char_end: int
    token_count: int

    @property
    def embedded_text(self) -> str:
        return embedded_text(self.heading, self.text)


def embedded_text(heading: str, text: str) -> str:
    return f"{heading}\n{text}" if heading else text


@functools.lru_cache(maxsize=8)
def _local_tokenizer(model: str):
    from tokenizers import Tokenizer

    from search.providers.local import models_dir

    directory = models_dir() / model
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    manifest = json.loads((directory / "export.json").read_text())
    return tokenizer, int(manifest["max_seq_length"])


@functools.lru_cache(maxsize=8)
def token_counter(spec: EmbeddingSpec) -> TokenCounter:
    """The counter and window of the model `spec` names."""
    tokens, overlap = settings.DOCUMENT_CHUNK_TOKENS, settings.DOCUMENT_CHUNK_OVERLAP_TOKENS
    if spec.provider == "local":
        tokenizer, max_seq_length = _local_tokenizer(spec.model)
        window = max_seq_length - 2  # [CLS] and [SEP]

        def count(text: str) -> int:
            return len(tokenizer.encode(text, add_special_tokens=False).ids)

        size = min(tokens, window)
        return TokenCounter(f"{spec.model} tokenizer", count, window, size, min(overlap, size // 4))

    window = HOSTED_WINDOWS.get(spec.provider, 2048)

    def utf8_length(text: str) -> int:
        return len(text.encode("utf-8"))

    size = min(tokens * HOSTED_CHARS_PER_TOKEN, window)
    return TokenCounter("UTF-8 bytes (upper bound)", utf8_length, window, size,
                        min(overlap * HOSTED_CHARS_PER_TOKEN, size // 4))


def chunk_sections(sections: list[Section], counter: TokenCounter) -> list[Chunk]:
    """Chunks of every section in order; offsets are in the extracted text (the sections'
    texts joined by a blank line)."""
    chunks: list[Chunk] = []
    base = 0
    for section in sections:
        heading = " ".join(section.heading.split())[:500]
        # The heading goes with every chunk of its section: room for it first.
        heading_cost = counter.count(heading + "\n") if heading else 0
        if heading and counter.window - heading_cost < MIN_TEXT_TOKENS:
            heading, heading_cost = "", 0  # a "heading" the size of a page is text, not a heading
        size = max(MIN_TEXT_TOKENS, min(counter.chunk_size, counter.window - heading_cost))
        overlap = min(counter.overlap, size // 4) or None
        pieces, offsets = semchunk.chunk(
            section.text, chunk_size=size, token_counter=counter.count, offsets=True, overlap=overlap
        )
        for text, (start, end) in zip(pieces, offsets, strict=True):
            if not text.strip():
                continue
            chunks.append(
                Chunk(
                    index=len(chunks),
                    text=text,
                    page=section.page,
                    heading=heading,
                    char_start=base + start,
                    char_end=base + end,
                    token_count=counter.count(embedded_text(heading, text)),
                )
            )
        base += len(section.text) + 2
    return chunks
