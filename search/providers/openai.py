"""OpenAI embeddings (text-embedding-3-small, 1536 dimensions by default) through the
official SDK.

The SDK retries 408/409/429/5xx and connection errors itself, with exponential backoff
and honouring Retry-After (max_retries = PROVIDER_MAX_RETRIES); every request has the
PROVIDER_TIMEOUT_SECONDS timeout. What still fails is translated here: unreachable, timed
out, rate limited or 5xx -> UpstreamUnavailable (503); a rejected key -> NotConfigured
(503); anything else the API refuses or answers oddly -> UpstreamBadResponse (502).
"""

import openai

from raptorflow.errors import NotConfigured, UpstreamBadResponse, UpstreamUnavailable
from search.providers.base import EmbeddingProvider

DEFAULT_MODEL = "text-embedding-3-small"
# Models whose size is known; text-embedding-3-* can also be shortened with `dimensions`.
NATIVE_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


class OpenAIEmbeddingProvider(EmbeddingProvider):
    name = "openai"
    # The embeddings endpoint takes at most 2,048 inputs per request.
    max_batch_size = 2048
    # 8,192 tokens per input; ~4 characters a token in English leaves a margin.
    max_input_chars = 24000

    def __init__(
        self, *, model: str, dimensions: int, api_key: str, base_url: str | None, timeout: float, max_retries: int
    ):
        super().__init__(model=model, dimensions=dimensions)
        if not api_key:
            raise NotConfigured("Embedding provider openai needs OPENAI_API_KEY.")
        self._timeout = timeout
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=max_retries
        )

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        # Only text-embedding-3 models take `dimensions`; send it only to shorten them.
        shorten = NATIVE_DIMENSIONS.get(self.model) not in (None, self.dimensions)
        try:
            response = self._client.embeddings.create(
                model=self.model,
                input=texts,
                encoding_format="float",
                **({"dimensions": self.dimensions} if shorten else {}),
            )
        except openai.APITimeoutError as exc:
            raise UpstreamUnavailable(f"Embedding provider {self.label} timed out after {self._timeout:g}s.") from exc
        except openai.APIConnectionError as exc:
            raise UpstreamUnavailable(f"Embedding provider {self.label} could not be reached.") from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise NotConfigured(f"Embedding provider {self.label} rejected the API key (OPENAI_API_KEY).") from exc
        except openai.RateLimitError as exc:
            raise UpstreamUnavailable(f"Embedding provider {self.label} is rate limiting; retry later.") from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                raise UpstreamUnavailable(
                    f"Embedding provider {self.label} is failing (HTTP {exc.status_code})."
                ) from exc
            raise UpstreamBadResponse(
                f"Embedding provider {self.label} refused the request (HTTP {exc.status_code})."
            ) from exc
        except openai.OpenAIError as exc:
            raise UpstreamBadResponse(f"Embedding provider {self.label} answered with something unusable.") from exc
        data = sorted(response.data or [], key=lambda item: item.index)
        return [item.embedding for item in data]
