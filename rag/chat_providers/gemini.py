"""Gemini through google-genai (the maintained successor of google-generativeai). The SDK is
imported here and nowhere else."""

import functools
from collections.abc import Iterator

import httpx2
from django.conf import settings
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from rag.chat_providers.base import ChatMessage, ChatProvider, ChatReply, ProviderError, StreamUsage

_ROLES = {"user": "user", "assistant": "model"}


class GeminiProvider(ChatProvider):
    name = "gemini"

    @property
    def default_model(self) -> str:
        return settings.GEMINI_CHAT_MODEL

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._client = _client(self.api_key, self.timeout)

    def _request(self, messages: list[ChatMessage]) -> tuple[list[types.Content], types.GenerateContentConfig]:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        contents = [
            types.Content(role=_ROLES[m.role], parts=[types.Part(text=m.content)])
            for m in messages
            if m.role in _ROLES
        ]
        # No max_output_tokens: on Gemini 2.5 it also caps the model's thinking tokens, so a
        # low cap can leave an empty answer. The reply room in the prompt budget still holds.
        config = types.GenerateContentConfig(
            system_instruction=system or None,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        return contents, config

    def complete(self, messages: list[ChatMessage], *, model: str | None = None) -> ChatReply:
        model = model or self.model
        contents, config = self._request(messages)
        try:
            response = self._client.models.generate_content(model=model, contents=contents, config=config)
            text = response.text
        except (genai_errors.APIError, genai_errors.UnknownApiResponseError, httpx2.HTTPError) as exc:
            raise self._translate(exc) from exc
        if text is None:
            raise ProviderError(self.name, "answered without text (blocked or empty)", retryable=False)
        prompt_tokens, completion_tokens = _usage(response.usage_metadata)
        return ChatReply(
            text=text,
            model=response.model_version or model,
            provider=self.name,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    def stream(self, messages: list[ChatMessage], *, model: str | None = None) -> Iterator[str | StreamUsage]:
        model = model or self.model
        contents, config = self._request(messages)
        answered_model, usage = model, None
        try:
            for chunk in self._client.models.generate_content_stream(model=model, contents=contents, config=config):
                answered_model = chunk.model_version or answered_model
                usage = chunk.usage_metadata or usage
                text = chunk.text
                if text:
                    yield text
        except (genai_errors.APIError, genai_errors.UnknownApiResponseError, httpx2.HTTPError) as exc:
            raise self._translate(exc) from exc
        prompt_tokens, completion_tokens = _usage(usage)
        yield StreamUsage(model=answered_model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    def _translate(self, exc: Exception) -> ProviderError:
        if isinstance(exc, httpx2.TimeoutException):
            return ProviderError(self.name, "timed out", retryable=True)
        if isinstance(exc, httpx2.HTTPError):
            return ProviderError(self.name, "could not be reached", retryable=True)
        if isinstance(exc, genai_errors.APIError):
            code = exc.code or 0
            return ProviderError(self.name, f"answered HTTP {code}", retryable=code == 429 or code >= 500)
        return ProviderError(self.name, "answered something unusable", retryable=False)


@functools.lru_cache(maxsize=64)
def _client(api_key: str, timeout: float) -> genai.Client:
    """One client per key, shared by requests (connections are reused). Held by this cache
    and by each provider instance for as long as a call or a stream runs: a genai.Client
    closes its HTTP client when it is garbage-collected. HttpOptions.timeout is in ms; with
    no retry_options the SDK does not retry, so a failure hands over to the next provider."""
    return genai.Client(
        vertexai=False,
        api_key=api_key,
        http_options=types.HttpOptions(timeout=int(timeout * 1000)),
    )


def _usage(metadata: types.GenerateContentResponseUsageMetadata | None) -> tuple[int, int]:
    if metadata is None:
        return 0, 0
    # Thinking tokens are billed as output.
    completion = (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0)
    return metadata.prompt_token_count or 0, completion
