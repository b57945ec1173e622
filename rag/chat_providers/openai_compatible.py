"""OpenAI chat completions, and OpenRouter through the same SDK (it speaks the OpenAI API
at its own base URL). The client and the SDK's errors belong to
raptorflow.upstreams.openai_compatible."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from rag.chat_providers.base import ChatMessage, ChatProvider, ChatReply, ProviderError, StreamUsage, upstream_failures
from raptorflow.upstreams import openai_compatible


class OpenAIProvider(ChatProvider):
    name = "openai"
    key_setting = "OPENAI_API_KEY"

    @property
    def default_model(self) -> str:
        return settings.OPENAI_CHAT_MODEL

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # No SDK retries: a failing provider hands over to the next one in CHAT_PROVIDERS
        # instead of making the user wait through its backoff.
        self._client = openai_compatible.client(
            api_key=self.api_key,
            base_url=self.base_url(),
            timeout=self.timeout,
            max_retries=0,
            default_headers=self.default_headers(),
        )

    def base_url(self) -> str | None:
        return settings.OPENAI_BASE_URL or None

    def default_headers(self) -> dict[str, str] | None:
        return None

    def _token_limit(self) -> dict:
        return {"max_completion_tokens": self.max_tokens} if self.max_tokens else {}

    @contextmanager
    def _calling(self) -> Iterator[None]:
        with (
            upstream_failures(self.name),
            openai_compatible.translated(
                f"Chat provider {self.name}", timeout=self.timeout, key_setting=self.key_setting
            ),
        ):
            yield

    def complete(self, messages: list[ChatMessage], *, model: str | None = None) -> ChatReply:
        model = model or self.model
        with self._calling():
            response = self._client.chat.completions.create(
                model=model, messages=_as_openai(messages), **self._token_limit()
            )
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
        with self._calling():
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
        yield StreamUsage(model=answered_model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


class OpenRouterProvider(OpenAIProvider):
    name = "openrouter"
    key_setting = "OPENROUTER_API_KEY"

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


def _as_openai(messages: list[ChatMessage]) -> list[dict]:
    return [{"role": m.role, "content": m.content} for m in messages]
