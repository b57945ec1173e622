"""Gemini embeddings (gemini-embedding-001 with output_dimensionality 768) through
google-genai, whose client and errors raptorflow.upstreams.gemini owns.

The default 3,072 dimensions are past the 2,000 an HNSW `vector` index takes, hence 768.
google-genai retries 408/429/5xx with exponential backoff (PROVIDER_MAX_RETRIES) and times
out after PROVIDER_TIMEOUT_SECONDS; failures are translated like the OpenAI provider's.
The genai.Client is kept on the provider: it closes its HTTP client when garbage-collected.
"""

from google.genai import types

from raptorflow.errors import NotConfigured
from raptorflow.upstreams import gemini
from search.providers.base import EmbeddingProvider

DEFAULT_MODEL = "gemini-embedding-001"
DEFAULT_DIMENSIONS = 768


class GeminiEmbeddingProvider(EmbeddingProvider):
    name = "gemini"
    # batchEmbedContents takes at most 100 requests.
    max_batch_size = 100
    # 2,048 input tokens.
    max_input_chars = 8000

    def __init__(self, *, model: str, dimensions: int, api_key: str, timeout: float, max_retries: int):
        super().__init__(model=model, dimensions=dimensions)
        if not api_key:
            raise NotConfigured(f"Embedding provider gemini needs {gemini.KEY_SETTING}.")
        self._timeout = timeout
        self._client = gemini.client(api_key=api_key, timeout=timeout, max_retries=max_retries)
        self._config = types.EmbedContentConfig(output_dimensionality=dimensions)

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        with gemini.translated(f"Embedding provider {self.label}", timeout=self._timeout):
            response = self._client.models.embed_content(model=self.model, contents=texts, config=self._config)
            return [embedding.values or [] for embedding in (response.embeddings or [])]
