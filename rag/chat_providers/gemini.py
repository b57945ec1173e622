"""Gemini through google-genai (the maintained successor of google-generativeai). The client
and the SDK's errors belong to raptorflow.upstreams.gemini; this module builds the request
and reads the answer."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from google.genai import types

from rag.chat_providers.base import ChatMessage, ChatProvider, ChatReply, ProviderError, StreamUsage, upstream_failures
from raptorflow.upstreams import gemini

_ROLES = {"user": "user", "assistant": "model"}


class GeminiProvider(ChatProvider):
    name = "gemini"

    @property
    def default_model(self) -> str:
        return settings.GEMINI_CHAT_MODEL

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Held for as long as a call or a stream runs (a genai.Client closes its HTTP client
        # when garbage-collected). No SDK retries: a failure hands over to the next provider.
        self._client = gemini.client(api_key=self.api_key, timeout=self.timeout, max_retries=0)

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

    @contextmanager
    def _calling(self) -> Iterator[None]:
        with upstream_failures(self.name), gemini.translated(f"Chat provider {self.name}", timeout=self.timeout):
            yield

    def complete(self, messages: list[ChatMessage], *, model: str | None = None) -> ChatReply:
        model = model or self.model
        contents, config = self._request(messages)
        with self._calling():
            response = self._client.models.generate_content(model=model, contents=contents, config=config)
            text = response.text
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
        with self._calling():
            for chunk in self._client.models.generate_content_stream(model=model, contents=contents, config=config):
                answered_model = chunk.model_version or answered_model
                usage = chunk.usage_metadata or usage
                text = chunk.text
                if text:
                    yield text
        prompt_tokens, completion_tokens = _usage(usage)
        yield StreamUsage(model=answered_model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def _usage(metadata: types.GenerateContentResponseUsageMetadata | None) -> tuple[int, int]:
    if metadata is None:
        return 0, 0
    # Thinking tokens are billed as output.
    completion = (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0)
    return metadata.prompt_token_count or 0, completion
