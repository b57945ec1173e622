"""OpenAI chat completions, and OpenRouter through the same SDK (it speaks the OpenAI API
at its own base URL). The openai SDK is imported here and nowhere else."""

import functools
from collections.abc import Iterator

import openai
from django.conf import settings

from rag.chat_providers.base import ChatMessage, ChatProvider, ChatReply, ProviderError, StreamUsage


class OpenAIProvider(ChatProvider):
    name = "openai"

    @property
    def default_model(self) -> str:
        return settings.OPENAI_CHAT_MODEL

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        headers = self.default_headers()
        self._client = _client(self.api_key, self.base_url(), self.timeout, tuple(sorted((headers or {}).items())))

    def base_url(self) -> str | None:
        return settings.OPENAI_BASE_URL or None

    def default_headers(self) -> dict[str, str] | None:
        return None

    def _token_limit(self) -> dict:
        return {"max_completion_tokens": self.max_tokens} if self.max_tokens else {}

    def complete(self, messages: list[ChatMessage], *, model: str | None = None) -> ChatReply:
        model = model or self.model
        try:
            response = self._client.chat.completions.create(
                model=model, messages=_as_openai(messages), **self._token_limit()
            )
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        if not response.choices or response.choices[0].message is None:
            raise ProviderError(self.name, "answered without a choice", retryable=False)
        usage = response.usage
        return ChatReply(
            text=response.choices[0].message.content or "",
            model=response.model or model,
            provider=self.name,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    def stream(self, messages: list[ChatMessage], *, model: str | None = None) -> Iterator[str | StreamUsage]:
        model = model or self.model
        answered_model, prompt_tokens, completion_tokens = model, 0, 0
        try:
            chunks = self._client.chat.completions.create(
                model=model,
                messages=_as_openai(messages),
                stream=True,
                # The last chunk then carries the usage: billing counts what the provider reports.
                stream_options={"include_usage": True},
                **self._token_limit(),
            )
            with chunks:
                for chunk in chunks:
                    answered_model = chunk.model or answered_model
                    if chunk.usage:
                        prompt_tokens = chunk.usage.prompt_tokens or 0
                        completion_tokens = chunk.usage.completion_tokens or 0
                    for choice in chunk.choices:
                        if choice.delta and choice.delta.content:
                            yield choice.delta.content
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        yield StreamUsage(model=answered_model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    def _translate(self, exc: openai.OpenAIError) -> ProviderError:
        if isinstance(exc, openai.APITimeoutError):
            return ProviderError(self.name, "timed out", retryable=True)
        if isinstance(exc, openai.APIConnectionError):
            return ProviderError(self.name, "could not be reached", retryable=True)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            retryable = status == 429 or status >= 500
            return ProviderError(self.name, f"answered HTTP {status}", retryable=retryable)
        return ProviderError(self.name, f"answered something unusable ({type(exc).__name__})", retryable=False)


class OpenRouterProvider(OpenAIProvider):
    name = "openrouter"

    @property
    def default_model(self) -> str:
        return settings.OPENROUTER_CHAT_MODEL

    def base_url(self) -> str | None:
        return settings.OPENROUTER_BASE_URL

    def default_headers(self) -> dict[str, str] | None:
        # OpenRouter's optional app attribution headers.
        return {"HTTP-Referer": settings.FRONTEND_URL, "X-Title": "RaptorFlow"} if settings.FRONTEND_URL else None

    def _token_limit(self) -> dict:
        # Not every model behind OpenRouter knows max_completion_tokens; max_tokens is universal there.
        return {"max_tokens": self.max_tokens} if self.max_tokens else {}


@functools.lru_cache(maxsize=64)
def _client(api_key: str, base_url: str | None, timeout: float, headers: tuple) -> openai.OpenAI:
    """One client per key and endpoint, shared by requests and threads (the SDK's client is
    thread-safe), so connections are reused instead of opened per reply. No SDK retries: a
    failing provider hands over to the next one in CHAT_PROVIDERS instead of making the user
    wait through its backoff."""
    return openai.OpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=openai.Timeout(timeout, connect=min(timeout, 10.0)),
        max_retries=0,
        default_headers=dict(headers) or None,
    )


def _as_openai(messages: list[ChatMessage]) -> list[dict]:
    return [{"role": m.role, "content": m.content} for m in messages]
