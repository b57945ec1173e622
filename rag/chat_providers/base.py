"""The one interface every chat provider implements, and the errors it may raise.

Providers speak in these plain types only: no SDK or HTTP object leaves a provider module.
The SDKs' clients and exceptions belong to raptorflow.upstreams; a provider turns the
errors those raise into ProviderError (`upstream_failures`) for the fallback loop.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from raptorflow.errors import UpstreamBadResponse, UpstreamUnavailable


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class ChatReply:
    text: str
    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class StreamUsage:
    """The last item of a provider's stream: the model that answered and the usage it
    reported (billed usage is always the provider's figure, never our estimate)."""

    model: str
    prompt_tokens: int
    completion_tokens: int


class ProviderError(Exception):
    """A provider call failed. `retryable` (timeout, connection error, 429, 5xx) means the
    next provider in CHAT_PROVIDERS may be tried; anything else is the request's own fault
    or a broken answer, which another provider would not fix."""

    def __init__(self, provider: str, reason: str, *, retryable: bool):
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason
        self.retryable = retryable


@contextmanager
def upstream_failures(provider: str) -> Iterator[None]:
    """Turns the errors of raptorflow.upstreams (which carry `reason` and `retryable`) into
    the ProviderError of `provider`."""
    try:
        yield
    except (UpstreamUnavailable, UpstreamBadResponse) as exc:
        raise ProviderError(provider, exc.reason, retryable=exc.retryable) from exc


class ChatProvider:
    """complete() answers at once; stream() yields text deltas (str) and ends with one
    StreamUsage. Both raise ProviderError, never an SDK exception."""

    name: str = ""
    default_model: str = ""

    def __init__(self, *, api_key: str, model: str | None = None, timeout: float, max_tokens: int | None):
        self.api_key = api_key
        self.model = model or self.default_model
        self.timeout = timeout
        self.max_tokens = max_tokens

    def complete(self, messages: list[ChatMessage], *, model: str | None = None) -> ChatReply:
        raise NotImplementedError

    def stream(self, messages: list[ChatMessage], *, model: str | None = None) -> Iterator[str | StreamUsage]:
        raise NotImplementedError
