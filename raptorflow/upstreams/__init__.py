"""One module per third-party SDK that RaptorFlow calls: `openai_compatible` (OpenAI and
OpenRouter through the openai SDK) and `gemini` (google-genai).

Both the embedding providers (search.providers) and the chat providers
(rag.chat_providers) use the same SDKs; each SDK's client construction (base URL, key,
timeouts, retries) and the translation of its exceptions into our own live in its module
here, so a timeout, a 429 or a 5xx means the same thing to an embedding call and to a chat
call. This is the core layer: nothing here imports the apps.

A failed call raises one of raptorflow.errors' exceptions, carrying two extra attributes
for callers that choose what happens next (the chat fallback):

    reason     a short phrase without the service name: "timed out", "answered HTTP 429"
    retryable  the same request may succeed elsewhere or later (timeout, unreachable,
               429, 5xx): another provider is worth trying

| failure                              | raises              | retryable |
|--------------------------------------|---------------------|-----------|
| timed out, unreachable, 429, 5xx     | UpstreamUnavailable | yes       |
| key rejected (401, 403)              | NotConfigured (503) | no        |
| any other refusal (4xx)              | UpstreamBadResponse | no        |
| an answer the SDK or we cannot read  | UpstreamBadResponse | no        |
"""

from raptorflow.errors import DomainError, NotConfigured, UpstreamBadResponse, UpstreamUnavailable

__all__ = ["failure", "status_failure", "timed_out", "unreachable", "unusable"]


def failure(cls: type[DomainError], service: str, sentence: str, *, reason: str, retryable: bool) -> DomainError:
    """`cls("<service> <sentence>.")` with `reason` and `retryable` set (see the module docstring)."""
    exc = cls(f"{service} {sentence}.")
    exc.reason = reason
    exc.retryable = retryable
    return exc


def timed_out(service: str, timeout: float) -> DomainError:
    return failure(UpstreamUnavailable, service, f"timed out after {timeout:g}s", reason="timed out", retryable=True)


def unreachable(service: str) -> DomainError:
    reason = "could not be reached"
    return failure(UpstreamUnavailable, service, reason, reason=reason, retryable=True)


def status_failure(service: str, status: int, *, key_setting: str) -> DomainError:
    """An HTTP error status the SDK gave up on (after its own retries, if any)."""
    reason = f"answered HTTP {status}"
    if status in (401, 403):
        sentence = f"rejected the API key ({key_setting})"
        return failure(NotConfigured, service, sentence, reason=reason, retryable=False)
    if status == 429:
        return failure(UpstreamUnavailable, service, "is rate limiting; retry later", reason=reason, retryable=True)
    if status >= 500:
        sentence = f"is failing (HTTP {status})"
        return failure(UpstreamUnavailable, service, sentence, reason=reason, retryable=True)
    sentence = f"refused the request (HTTP {status})"
    return failure(UpstreamBadResponse, service, sentence, reason=reason, retryable=False)


def unusable(service: str, exc: BaseException) -> DomainError:
    """Malformed JSON, or a response the SDK (or the caller reading it) cannot parse."""
    reason = f"answered something unusable ({type(exc).__name__})"
    return failure(UpstreamBadResponse, service, "answered with something unusable", reason=reason, retryable=False)
