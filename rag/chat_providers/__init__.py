"""Chat providers behind one interface (base.ChatProvider), tried in CHAT_PROVIDERS order.

`chat_providers(api_keys)` builds the providers that have a key, `complete()` answers with
the first one that succeeds, and `ReplyStream` does the same for streams — but only until the
first delta has been handed out: after that a failure ends the stream (the client already
shows part of one provider's answer, and another provider would start over). Both go
through one fallback loop, `_first_success`.
"""

import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from rag.chat_providers.base import ChatMessage, ChatProvider, ChatReply, ProviderError, StreamUsage
from rag.chat_providers.gemini import GeminiProvider
from rag.chat_providers.openai_compatible import OpenAIProvider, OpenRouterProvider
from raptorflow.errors import NotConfigured, UpstreamBadResponse, UpstreamUnavailable
from raptorflow.metrics import count_chat_fallback
from raptorflow.metrics import observe_chat_call as observe_provider_call

logger = logging.getLogger(__name__)

T = TypeVar("T")

PROVIDER_CLASSES: dict[str, type[ChatProvider]] = {
    "openai": OpenAIProvider,
    "gemini": GeminiProvider,
    "openrouter": OpenRouterProvider,
}
PROVIDER_NAMES = tuple(PROVIDER_CLASSES)
SERVER_KEY_SETTINGS = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY", "openrouter": "OPENROUTER_API_KEY"}

__all__ = [
    "PROVIDER_NAMES",
    "ChatMessage",
    "ChatReply",
    "ProviderError",
    "ReplyStream",
    "StreamUsage",
    "chat_providers",
    "complete",
    "server_api_keys",
]


def server_api_keys() -> dict[str, str]:
    return {name: getattr(settings, setting, "") for name, setting in SERVER_KEY_SETTINGS.items()}


def chat_providers(api_keys: dict[str, str]) -> list[ChatProvider]:
    """The providers of CHAT_PROVIDERS that have a key in `api_keys`, in that order.
    Raises NotConfigured (503) naming the missing keys when none has one."""
    order = [name.lower() for name in settings.CHAT_PROVIDERS]
    unknown = [name for name in order if name not in PROVIDER_CLASSES]
    if unknown:
        raise ImproperlyConfigured(
            f"CHAT_PROVIDERS names unknown providers: {', '.join(unknown)} (known: {', '.join(PROVIDER_NAMES)})"
        )
    providers = [
        PROVIDER_CLASSES[name](
            api_key=api_keys[name],
            timeout=settings.PROVIDER_TIMEOUT_SECONDS,
            max_tokens=settings.CHAT_MAX_REPLY_TOKENS,
        )
        for name in order
        if api_keys.get(name)
    ]
    if not providers:
        missing = ", ".join(SERVER_KEY_SETTINGS[name] for name in order) or "CHAT_PROVIDERS"
        raise NotConfigured(
            f"No chat model is configured: set one of {missing} on the server "
            "(or store an organization provider key), for a provider listed in CHAT_PROVIDERS."
        )
    return providers


def _raise_for(failures: list[ProviderError]) -> None:
    summary = "; ".join(f"{f.provider} {f.reason}" for f in failures)
    details = [{"provider": f.provider, "reason": f.reason} for f in failures]
    if all(f.retryable for f in failures):
        raise UpstreamUnavailable(f"No chat provider could answer: {summary}.", providers=details)
    raise UpstreamBadResponse(f"The chat provider could not answer: {summary}.", providers=details)


def _first_success(providers: list[ChatProvider], attempt: Callable[[ChatProvider], T]) -> T:
    """The fallback loop of complete() and ReplyStream: `attempt(provider)` for each provider
    in order until one returns. A retryable ProviderError (timeout, connection error, 429,
    5xx) moves on to the next provider; any other stops there. Each failure is timed as an
    "error" call (a success is recorded by the caller, who knows when it ends); when none
    succeeds, the API error naming every failure is raised."""
    failures: list[ProviderError] = []
    for provider in providers:
        started = time.monotonic()
        try:
            return attempt(provider)
        except ProviderError as exc:
            observe_provider_call(provider.name, "error", time.monotonic() - started)
            logger.warning("Chat provider %s failed: %s", provider.name, exc.reason)
            failures.append(exc)
            if not exc.retryable:
                break
            if provider is not providers[-1]:
                count_chat_fallback(provider=provider.name, reason=exc.reason)
    _raise_for(failures)
    raise AssertionError("unreachable")  # pragma: no cover


def complete(providers: list[ChatProvider], messages: list[ChatMessage]) -> ChatReply:
    """The first successful reply; on timeout, 429 or 5xx the next provider is tried."""

    def attempt(provider: ChatProvider) -> ChatReply:
        started = time.monotonic()
        reply = provider.complete(messages)
        elapsed = time.monotonic() - started
        observe_provider_call(provider.name, "ok", elapsed, reply.prompt_tokens, reply.completion_tokens)
        return reply

    return _first_success(providers, attempt)


class ReplyStream:
    """A streamed reply with fallback before its first delta.

    `start()` tries the providers until one produces a first delta (raising the API error
    when none does); iterating then yields that delta and the rest. Afterwards `text`,
    `provider`, `model` and `usage` describe what was received, also after a failure or an
    early `close()` (the part received so far)."""

    def __init__(self, providers: list[ChatProvider], messages: list[ChatMessage]):
        self._providers = providers
        self._messages = messages
        self._chunks: Iterator[str | StreamUsage] | None = None
        self._pending: str | None = None
        self._started_at = 0.0
        self.provider: str | None = None
        self.model: str | None = None
        self.usage: StreamUsage | None = None
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def start(self) -> None:
        self._chunks, self._pending, provider = _first_success(self._providers, self._open)
        self.provider, self.model = provider.name, provider.model

    def _open(self, provider: ChatProvider) -> tuple[Iterator[str | StreamUsage], str | None, ChatProvider]:
        """`provider`'s stream, read up to its first delta (a failure before it falls back)."""
        self._started_at = time.monotonic()
        chunks = provider.stream(self._messages)
        try:
            first = self._next_delta(chunks)
        except ProviderError:
            chunks.close()
            raise
        return chunks, first, provider

    def _next_delta(self, chunks: Iterator[str | StreamUsage]) -> str | None:
        for item in chunks:
            if isinstance(item, StreamUsage):
                self._record_usage(item)
                continue
            if item:
                return item
        return None

    def _record_usage(self, usage: StreamUsage) -> None:
        self.usage = usage
        self.model = usage.model or self.model

    def __iter__(self) -> Iterator[str]:
        if self._chunks is None:
            raise RuntimeError("ReplyStream.start() must succeed before iterating")
        if self._pending:
            self.parts.append(self._pending)
            pending, self._pending = self._pending, None
            yield pending
        try:
            for item in self._chunks:
                if isinstance(item, StreamUsage):
                    self._record_usage(item)
                    continue
                self.parts.append(item)
                yield item
        except ProviderError:
            observe_provider_call(self.provider, "error", time.monotonic() - self._started_at)
            raise
        usage = self.usage
        observe_provider_call(
            self.provider,
            "ok",
            time.monotonic() - self._started_at,
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
        )

    def close(self) -> None:
        """Stops reading from the provider (the client went away)."""
        if self._chunks is not None:
            self._chunks.close()
