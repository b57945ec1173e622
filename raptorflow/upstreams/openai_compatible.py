"""The openai SDK, for OpenAI and for OpenRouter (which speaks the OpenAI API at its own
base URL): the only module that builds its clients or catches its exceptions.

It exists so that the embedding provider (search.providers.openai) and the chat providers
(rag.chat_providers.openai_compatible) set timeouts and retries in one way and turn the
same failure into the same error (see raptorflow.upstreams for the table):

    client = openai_compatible.client(api_key=..., base_url=..., timeout=30.0, max_retries=2)
    with openai_compatible.translated("Embedding provider openai", timeout=30.0, key_setting="OPENAI_API_KEY"):
        response = client.embeddings.create(...)

The SDK itself retries 408/409/429/5xx and connection errors `max_retries` times, with
exponential backoff honouring Retry-After; embeddings use that, while chat passes 0 because
its fallback to the next provider is faster than waiting through a backoff.
"""

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import openai

from raptorflow import upstreams
from raptorflow.errors import DomainError

__all__ = ["CONNECT_TIMEOUT_SECONDS", "client", "translated"]

#: A host that accepts no connection within this is down; only reading an answer may take
#: the whole PROVIDER_TIMEOUT_SECONDS.
CONNECT_TIMEOUT_SECONDS = 10.0


def client(
    *,
    api_key: str,
    base_url: str | None,
    timeout: float,
    max_retries: int,
    default_headers: dict[str, str] | None = None,
) -> openai.OpenAI:
    """A client for `base_url` (None: api.openai.com), shared by every caller with the same
    arguments: the SDK's client is thread-safe, and sharing it reuses its connections."""
    headers = tuple(sorted((default_headers or {}).items()))
    return _client(api_key, base_url or None, float(timeout), int(max_retries), headers)


@functools.lru_cache(maxsize=64)
def _client(api_key: str, base_url: str | None, timeout: float, max_retries: int, headers: tuple) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=openai.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_SECONDS)),
        max_retries=max_retries,
        default_headers=dict(headers) or None,
    )


@contextmanager
def translated(service: str, *, timeout: float, key_setting: str) -> Iterator[None]:
    """Runs the SDK calls of its block, raising our errors instead of the SDK's. `service`
    starts each message ("Embedding provider openai (text-embedding-3-small)");
    `key_setting` names the key a 401/403 rejected."""
    try:
        yield
    except DomainError:
        raise
    except openai.APITimeoutError as exc:
        raise upstreams.timed_out(service, timeout) from exc
    except openai.APIConnectionError as exc:
        raise upstreams.unreachable(service) from exc
    except openai.APIStatusError as exc:
        raise upstreams.status_failure(service, exc.status_code, key_setting=key_setting) from exc
    except Exception as exc:
        # APIResponseValidationError, malformed JSON, a stream chunk missing its fields.
        raise upstreams.unusable(service, exc) from exc
