"""OpenAI embeddings (text-embedding-3-small, 1536 dimensions by default) through the
official SDK, whose client and errors raptorflow.upstreams.openai_compatible owns.

The SDK retries 408/409/429/5xx and connection errors itself, with exponential backoff
and honouring Retry-After (max_retries = PROVIDER_MAX_RETRIES); every request has the
PROVIDER_TIMEOUT_SECONDS timeout. What still fails becomes: unreachable, timed out, rate
limited or 5xx -> UpstreamUnavailable (503); a rejected key -> NotConfigured (503);
anything else the API refuses or answers oddly -> UpstreamBadResponse (502).
"""

from raptorflow.errors import NotConfigured
from raptorflow.upstreams import openai_compatible
from search.providers.base import EmbeddingProvider

DEFAULT_MODEL = "text-embedding-3-small"
# Models whose size is known; text-embedding-3-* can also be shortened with `dimensions`.
NATIVE_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
KEY_SETTING = "OPENAI_API_KEY"


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
            raise NotConfigured(f"Embedding provider openai needs {KEY_SETTING}.")
        self._timeout = timeout
        self._client = openai_compatible.client(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        # Only text-embedding-3 models take `dimensions`; send it only to shorten them.
        shorten = NATIVE_DIMENSIONS.get(self.model) not in (None, self.dimensions)
        with openai_compatible.translated(
            f"Embedding provider {self.label}", timeout=self._timeout, key_setting=KEY_SETTING
        ):
            response = self._client.embeddings.create(
                model=self.model,
                input=texts,
                encoding_format="float",
                **({"dimensions": self.dimensions} if shorten else {}),
            )
            data = sorted(response.data or [], key=lambda item: item.index)
        return [item.embedding for item in data]
