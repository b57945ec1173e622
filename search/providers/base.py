"""The one small interface every embedding provider implements.

`embed(texts) -> list of vectors` splits the input into the provider's batch size, calls
`_embed_batch` for each batch and checks what came back: one finite vector of
`dimensions` floats per input text, or UpstreamBadResponse (502) naming the provider.
Transport failures are translated by each provider into UpstreamUnavailable (503).
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

from raptorflow import metrics
from raptorflow.errors import UpstreamBadResponse


class EmbeddingProvider(ABC):
    #: "local", "openai" or "gemini": named in every error message.
    name: str = ""
    #: Inputs per request (OpenAI takes 2,048; Gemini's batchEmbedContents 100).
    max_batch_size: int = 64
    #: Longer texts are cut before they are sent (the models only read the start anyway,
    #: and the hosted APIs refuse inputs past their token limit).
    max_input_chars: int = 8000

    def __init__(self, *, model: str, dimensions: int):
        self.model = model
        self.dimensions = dimensions

    @property
    def label(self) -> str:
        return f"{self.name} ({self.model})"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        texts = [text[: self.max_input_chars] for text in texts]
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.max_batch_size):
            batch = texts[start : start + self.max_batch_size]
            with metrics.embedding_call(self.name, len(batch)):
                vectors.extend(self._checked(self._embed_batch(batch), expected=len(batch)))
        return vectors

    def embed_one(self, text: str) -> list[float]:
        return self.embed([text])[0]

    @abstractmethod
    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        """One request's worth of texts -> their vectors, in order."""

    def _checked(self, vectors, *, expected: int) -> list[list[float]]:
        try:
            vectors = [[float(value) for value in vector] for vector in vectors]
        except (TypeError, ValueError) as exc:
            raise UpstreamBadResponse(
                f"Embedding provider {self.label} returned something that is not a vector."
            ) from exc
        if len(vectors) != expected:
            raise UpstreamBadResponse(
                f"Embedding provider {self.label} returned {len(vectors)} vectors for {expected} texts."
            )
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise UpstreamBadResponse(
                    f"Embedding provider {self.label} returned a vector of {len(vector)} dimensions; "
                    f"expected {self.dimensions}."
                )
            if not all(math.isfinite(value) for value in vector):
                raise UpstreamBadResponse(f"Embedding provider {self.label} returned a vector with non-finite values.")
            # A zero vector has no direction: its cosine distance to anything is undefined.
            if not any(vector):
                raise UpstreamBadResponse(f"Embedding provider {self.label} returned an all-zero vector.")
        return vectors
