"""Gemini embeddings (gemini-embedding-001 with output_dimensionality 768) through
google-genai.

The default 3,072 dimensions are past the 2,000 an HNSW `vector` index takes, hence 768.
google-genai retries 408/429/5xx with exponential backoff (HttpRetryOptions) and times
out after PROVIDER_TIMEOUT_SECONDS; failures are translated like the OpenAI provider's.
The genai.Client is kept on the provider: it closes its HTTP client when garbage-collected.
"""

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from raptorflow.errors import NotConfigured, UpstreamBadResponse, UpstreamUnavailable
from search.providers.base import EmbeddingProvider

DEFAULT_MODEL = "gemini-embedding-001"
DEFAULT_DIMENSIONS = 768
RETRY_STATUS_CODES = [408, 429, 500, 502, 503, 504]


class GeminiEmbeddingProvider(EmbeddingProvider):
    name = "gemini"
    # batchEmbedContents takes at most 100 requests.
    max_batch_size = 100
    # 2,048 input tokens.
    max_input_chars = 8000

    def __init__(self, *, model: str, dimensions: int, api_key: str, timeout: float, max_retries: int):
        super().__init__(model=model, dimensions=dimensions)
        if not api_key:
            raise NotConfigured("Embedding provider gemini needs GEMINI_API_KEY.")
        self._timeout = timeout
        self._client = genai.Client(
            api_key=api_key,
            http_options=types.HttpOptions(
                timeout=int(timeout * 1000),
                retry_options=types.HttpRetryOptions(
                    attempts=max_retries + 1,
                    initial_delay=0.5,
                    max_delay=8.0,
                    jitter=0.25,
                    http_status_codes=RETRY_STATUS_CODES,
                ),
            ),
        )
        self._config = types.EmbedContentConfig(output_dimensionality=dimensions)

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        try:
            response = self._client.models.embed_content(model=self.model, contents=texts, config=self._config)
        except httpx2.TimeoutException as exc:
            raise UpstreamUnavailable(f"Embedding provider {self.label} timed out after {self._timeout:g}s.") from exc
        except httpx2.TransportError as exc:
            raise UpstreamUnavailable(f"Embedding provider {self.label} could not be reached.") from exc
        except genai_errors.APIError as exc:
            if exc.code in (401, 403):
                raise NotConfigured(f"Embedding provider {self.label} rejected the API key (GEMINI_API_KEY).") from exc
            if exc.code == 429:
                raise UpstreamUnavailable(f"Embedding provider {self.label} is rate limiting; retry later.") from exc
            if exc.code and exc.code >= 500:
                raise UpstreamUnavailable(f"Embedding provider {self.label} is failing (HTTP {exc.code}).") from exc
            raise UpstreamBadResponse(
                f"Embedding provider {self.label} refused the request (HTTP {exc.code})."
            ) from exc
        except Exception as exc:
            # Malformed JSON or a response the SDK cannot parse.
            raise UpstreamBadResponse(f"Embedding provider {self.label} answered with something unusable.") from exc
        return [embedding.values or [] for embedding in (response.embeddings or [])]
