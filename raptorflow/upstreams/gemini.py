"""google-genai (the maintained successor of google-generativeai): the only module that
builds its clients or catches its exceptions.

It exists so that the embedding provider (search.providers.gemini) and the chat provider
(rag.chat_providers.gemini) set timeouts and retries in one way and turn the same failure
into the same error (see raptorflow.upstreams for the table):

    client = gemini.client(api_key=..., timeout=30.0, max_retries=2)
    with gemini.translated("Embedding provider gemini", timeout=30.0):
        response = client.models.embed_content(...)

Callers keep a reference to the client for as long as they use it: a genai.Client closes
its HTTP client when it is garbage-collected, which breaks a call or stream still running
on it. `client()` also keeps each one it built.
"""

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from raptorflow import upstreams
from raptorflow.errors import DomainError

__all__ = ["KEY_SETTING", "RETRY_STATUS_CODES", "client", "translated"]

KEY_SETTING = "GEMINI_API_KEY"
#: What the SDK retries (with exponential backoff) when max_retries > 0.
RETRY_STATUS_CODES = [408, 429, 500, 502, 503, 504]


def client(*, api_key: str, timeout: float, max_retries: int) -> genai.Client:
    """A Gemini Developer API client (never Vertex AI, whatever the environment says), shared
    by every caller with the same arguments. HttpOptions.timeout is in milliseconds; with
    max_retries=0 the SDK makes exactly one attempt."""
    return _client(api_key, float(timeout), int(max_retries))


@functools.lru_cache(maxsize=64)
def _client(api_key: str, timeout: float, max_retries: int) -> genai.Client:
    retry_options = None
    if max_retries > 0:
        retry_options = types.HttpRetryOptions(
            attempts=max_retries + 1,
            initial_delay=0.5,
            max_delay=8.0,
            jitter=0.25,
            http_status_codes=RETRY_STATUS_CODES,
        )
    return genai.Client(
        vertexai=False,
        api_key=api_key,
        http_options=types.HttpOptions(timeout=int(timeout * 1000), retry_options=retry_options),
    )


@contextmanager
def translated(service: str, *, timeout: float) -> Iterator[None]:
    """Runs the SDK calls of its block, raising our errors instead of the SDK's (or
    httpx2's, which google-genai lets through). `service` starts each message."""
    try:
        yield
    except DomainError:
        raise
    except httpx2.TimeoutException as exc:
        raise upstreams.timed_out(service, timeout) from exc
    except httpx2.RequestError as exc:
        # What the openai SDK calls an APIConnectionError: the request did not get an answer.
        raise upstreams.unreachable(service) from exc
    except genai_errors.APIError as exc:
        raise upstreams.status_failure(service, exc.code or 0, key_setting=KEY_SETTING) from exc
    except Exception as exc:
        # UnknownApiResponseError, malformed JSON, a response the SDK cannot parse.
        raise upstreams.unusable(service, exc) from exc
