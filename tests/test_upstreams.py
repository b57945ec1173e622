"""raptorflow.upstreams: one client module per SDK (openai, google-genai), shared by the
embedding and the chat providers, exercised through the real SDKs with HTTP mocked by respx.

The same upstream failure must mean the same thing to an embedding call and to a chat call:
timeouts, 429s and 5xx are UpstreamUnavailable (and make chat fall back), a rejected key is
NotConfigured (and stops chat's fallback), and an unreadable answer is UpstreamBadResponse.
"""

import httpx
import pytest

from rag.chat_providers import ChatMessage, ProviderError, complete
from rag.chat_providers.gemini import GeminiProvider
from rag.chat_providers.openai_compatible import OpenAIProvider
from raptorflow.errors import NotConfigured, UpstreamBadResponse, UpstreamUnavailable
from raptorflow.upstreams import gemini, openai_compatible
from search.providers.gemini import GeminiEmbeddingProvider
from search.providers.openai import OpenAIEmbeddingProvider

OPENAI_EMBEDDINGS_URL = "https://api.openai.com/v1/embeddings"
OPENAI_CHAT_URL = "https://api.openai.com/v1/chat/completions"
GEMINI_EMBEDDINGS_URL = (
    r"^https://generativelanguage\.googleapis\.com/.*/models/gemini-embedding-001:batchEmbedContents$"
)
GEMINI_CHAT_URL = r"^https://generativelanguage\.googleapis\.com/.*/models/gemini-2\.5-flash:generateContent$"

MESSAGES = [ChatMessage("user", "Plan a launch")]
TIMEOUT = 4.0


@pytest.fixture(autouse=True)
def _chat_models(settings):
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_CHAT_MODEL = "gpt-4o-mini"
    settings.GEMINI_CHAT_MODEL = "gemini-2.5-flash"


def openai_embedder(*, max_retries=0, timeout=TIMEOUT):
    return OpenAIEmbeddingProvider(
        model="text-embedding-3-small",
        dimensions=1536,
        api_key="sk-upstream-test",
        base_url=None,
        timeout=timeout,
        max_retries=max_retries,
    )


def gemini_embedder(*, max_retries=0, timeout=TIMEOUT):
    return GeminiEmbeddingProvider(
        model="gemini-embedding-001",
        dimensions=768,
        api_key="gemini-upstream-test",
        timeout=timeout,
        max_retries=max_retries,
    )


def openai_chat():
    return OpenAIProvider(api_key="sk-upstream-test", timeout=TIMEOUT, max_tokens=None)


def gemini_chat():
    return GeminiProvider(api_key="gemini-upstream-test", timeout=TIMEOUT, max_tokens=None)


def embedding_error(provider) -> Exception:
    with pytest.raises(Exception) as caught:
        provider.embed(["budget allocation"])
    return caught.value


def chat_error(provider) -> ProviderError:
    """The chat provider's ProviderError; its cause is the error raptorflow.upstreams raised."""
    with pytest.raises(ProviderError) as caught:
        provider.complete(MESSAGES)
    return caught.value


UNAVAILABLE = [
    pytest.param(httpx.ReadTimeout("too slow"), "timed out", id="timeout"),
    pytest.param(httpx.ConnectError("refused"), "could not be reached", id="unreachable"),
    pytest.param(
        httpx.Response(429, json={"error": {"code": 429, "message": "slow down"}}), "answered HTTP 429", id="429"
    ),
    pytest.param(httpx.Response(500, json={"error": {"code": 500, "message": "oops"}}), "answered HTTP 500", id="500"),
    pytest.param(
        httpx.Response(503, json={"error": {"code": 503, "message": "overloaded"}}), "answered HTTP 503", id="503"
    ),
]


# --- the same failure, the same error --------------------------------------------------


@pytest.mark.parametrize(("failure", "reason"), UNAVAILABLE)
def test_openai_failure_is_the_same_upstream_unavailable_for_embeddings_and_chat(respx_mock, failure, reason):
    respx_mock.post(OPENAI_EMBEDDINGS_URL).mock(side_effect=[failure])
    respx_mock.post(OPENAI_CHAT_URL).mock(side_effect=[failure])

    embedding = embedding_error(openai_embedder())
    chat = chat_error(openai_chat())

    assert type(embedding) is UpstreamUnavailable and type(chat.__cause__) is UpstreamUnavailable
    assert embedding.status_code == chat.__cause__.status_code == 503
    assert embedding.reason == chat.__cause__.reason == chat.reason == reason
    assert embedding.retryable and chat.retryable
    assert str(embedding.detail).startswith("Embedding provider openai (text-embedding-3-small) ")


@pytest.mark.parametrize(("failure", "reason"), UNAVAILABLE)
def test_gemini_failure_is_the_same_upstream_unavailable_for_embeddings_and_chat(respx_mock, failure, reason):
    respx_mock.post(url__regex=GEMINI_EMBEDDINGS_URL).mock(side_effect=[failure])
    respx_mock.post(url__regex=GEMINI_CHAT_URL).mock(side_effect=[failure])

    embedding = embedding_error(gemini_embedder())
    chat = chat_error(gemini_chat())

    assert type(embedding) is UpstreamUnavailable and type(chat.__cause__) is UpstreamUnavailable
    assert embedding.reason == chat.__cause__.reason == chat.reason == reason
    assert embedding.retryable and chat.retryable
    assert str(embedding.detail).startswith("Embedding provider gemini (gemini-embedding-001) ")


def test_openai_and_gemini_timeouts_read_alike(respx_mock):
    respx_mock.post(OPENAI_EMBEDDINGS_URL).mock(side_effect=httpx.ReadTimeout("too slow"))
    respx_mock.post(url__regex=GEMINI_EMBEDDINGS_URL).mock(side_effect=httpx.ReadTimeout("too slow"))

    openai_error = embedding_error(openai_embedder())
    gemini_error = embedding_error(gemini_embedder())

    assert str(openai_error.detail) == "Embedding provider openai (text-embedding-3-small) timed out after 4s."
    assert str(gemini_error.detail) == "Embedding provider gemini (gemini-embedding-001) timed out after 4s."


def test_all_chat_providers_unavailable_is_one_503_naming_each(respx_mock):
    respx_mock.post(OPENAI_CHAT_URL).mock(return_value=httpx.Response(429, json={"error": {"message": "slow"}}))
    respx_mock.post(url__regex=GEMINI_CHAT_URL).mock(side_effect=httpx.ReadTimeout("too slow"))

    with pytest.raises(UpstreamUnavailable) as caught:
        complete([openai_chat(), gemini_chat()], MESSAGES)

    assert caught.value.status_code == 503
    assert str(caught.value.detail) == "No chat provider could answer: openai answered HTTP 429; gemini timed out."
    assert caught.value.extra["providers"] == [
        {"provider": "openai", "reason": "answered HTTP 429"},
        {"provider": "gemini", "reason": "timed out"},
    ]


# --- a rejected key ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_openai_rejected_key_is_not_configured_for_embeddings_and_stops_chat_fallback(respx_mock, status):
    rejected = httpx.Response(status, json={"error": {"message": "bad key"}})
    respx_mock.post(OPENAI_EMBEDDINGS_URL).mock(return_value=rejected)
    respx_mock.post(OPENAI_CHAT_URL).mock(return_value=rejected)
    gemini_route = respx_mock.post(url__regex=GEMINI_CHAT_URL)

    embedding = embedding_error(openai_embedder())
    with pytest.raises(UpstreamBadResponse) as caught:
        complete([openai_chat(), gemini_chat()], MESSAGES)

    assert type(embedding) is NotConfigured and "OPENAI_API_KEY" in str(embedding.detail)
    assert not embedding.retryable
    assert f"openai answered HTTP {status}" in str(caught.value.detail)
    assert gemini_route.call_count == 0


def test_gemini_rejected_key_is_not_configured_naming_its_setting(respx_mock):
    rejected = httpx.Response(403, json={"error": {"code": 403, "message": "bad key", "status": "PERMISSION_DENIED"}})
    respx_mock.post(url__regex=GEMINI_EMBEDDINGS_URL).mock(return_value=rejected)
    respx_mock.post(url__regex=GEMINI_CHAT_URL).mock(return_value=rejected)

    embedding = embedding_error(gemini_embedder())
    chat = chat_error(gemini_chat())

    assert type(embedding) is NotConfigured and "GEMINI_API_KEY" in str(embedding.detail)
    assert type(chat.__cause__) is NotConfigured
    assert (chat.reason, chat.retryable) == ("answered HTTP 403", False)


def test_other_refusals_are_bad_responses_that_chat_does_not_retry(respx_mock):
    refused = httpx.Response(400, json={"error": {"message": "context too long"}})
    respx_mock.post(OPENAI_EMBEDDINGS_URL).mock(return_value=refused)
    respx_mock.post(OPENAI_CHAT_URL).mock(return_value=refused)

    embedding = embedding_error(openai_embedder())
    chat = chat_error(openai_chat())

    assert type(embedding) is UpstreamBadResponse and embedding.status_code == 502
    assert "refused the request (HTTP 400)" in str(embedding.detail)
    assert type(chat.__cause__) is UpstreamBadResponse
    assert (chat.reason, chat.retryable) == ("answered HTTP 400", False)


# --- malformed answers -------------------------------------------------------------------


def not_json() -> httpx.Response:
    return httpx.Response(200, content=b"<html>gateway says hi</html>", headers={"content-type": "application/json"})


def test_openai_malformed_answer_is_upstream_bad_response_for_embeddings_and_chat(respx_mock):
    respx_mock.post(OPENAI_EMBEDDINGS_URL).mock(return_value=not_json())
    respx_mock.post(OPENAI_CHAT_URL).mock(return_value=not_json())

    embedding = embedding_error(openai_embedder())
    chat = chat_error(openai_chat())

    assert type(embedding) is UpstreamBadResponse and type(chat.__cause__) is UpstreamBadResponse
    assert embedding.status_code == 502
    assert str(embedding.detail) == (
        "Embedding provider openai (text-embedding-3-small) answered with something unusable."
    )
    assert chat.reason == "answered something unusable (JSONDecodeError)" and not chat.retryable


def test_gemini_malformed_answer_is_upstream_bad_response_for_embeddings_and_chat(respx_mock):
    respx_mock.post(url__regex=GEMINI_EMBEDDINGS_URL).mock(return_value=not_json())
    respx_mock.post(url__regex=GEMINI_CHAT_URL).mock(return_value=not_json())

    embedding = embedding_error(gemini_embedder())
    chat = chat_error(gemini_chat())

    assert type(embedding) is UpstreamBadResponse and type(chat.__cause__) is UpstreamBadResponse
    assert str(embedding.detail) == "Embedding provider gemini (gemini-embedding-001) answered with something unusable."
    assert chat.reason == "answered something unusable (JSONDecodeError)" and not chat.retryable


def test_malformed_chat_answer_does_not_fall_back(respx_mock):
    respx_mock.post(OPENAI_CHAT_URL).mock(return_value=not_json())
    gemini_route = respx_mock.post(url__regex=GEMINI_CHAT_URL)

    with pytest.raises(UpstreamBadResponse) as caught:
        complete([openai_chat(), gemini_chat()], MESSAGES)

    assert "openai answered something unusable" in str(caught.value.detail)
    assert gemini_route.call_count == 0


# --- timeouts and retries reach the SDK --------------------------------------------------


def test_openai_client_gets_the_configured_timeout_and_retries(respx_mock):
    failing = httpx.Response(500, headers={"retry-after-ms": "1"}, json={"error": {"message": "oops"}})
    route = respx_mock.post(OPENAI_EMBEDDINGS_URL).mock(return_value=failing)

    with pytest.raises(UpstreamUnavailable):
        openai_embedder(max_retries=2, timeout=12.5).embed(["hello"])

    assert route.call_count == 3
    timeout = route.calls.last.request.extensions["timeout"]
    assert timeout["read"] == 12.5
    # Connecting never waits longer than CONNECT_TIMEOUT_SECONDS, whatever the read timeout.
    assert timeout["connect"] == openai_compatible.CONNECT_TIMEOUT_SECONDS == 10.0


def test_openai_chat_client_does_not_retry(respx_mock):
    route = respx_mock.post(OPENAI_CHAT_URL).mock(return_value=httpx.Response(503, json={"error": {"message": "x"}}))

    chat_error(openai_chat())

    assert route.call_count == 1
    assert route.calls.last.request.extensions["timeout"]["read"] == TIMEOUT


def test_gemini_client_gets_the_configured_timeout_and_retries(respx_mock):
    failing = httpx.Response(503, json={"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
    route = respx_mock.post(url__regex=GEMINI_EMBEDDINGS_URL).mock(return_value=failing)

    with pytest.raises(UpstreamUnavailable):
        gemini_embedder(max_retries=1, timeout=12.5).embed(["hello"])

    assert route.call_count == 2
    assert route.calls.last.request.extensions["timeout"]["read"] == 12.5


def test_gemini_chat_client_does_not_retry(respx_mock):
    failing = httpx.Response(503, json={"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
    route = respx_mock.post(url__regex=GEMINI_CHAT_URL).mock(return_value=failing)

    chat_error(gemini_chat())

    assert route.call_count == 1
    assert route.calls.last.request.extensions["timeout"]["read"] == TIMEOUT


# --- clients are built once and kept -----------------------------------------------------


def test_callers_with_the_same_settings_share_one_client():
    openai_args = {"api_key": "sk-shared", "base_url": None, "timeout": 5.0, "max_retries": 1}
    gemini_args = {"api_key": "gemini-shared", "timeout": 5.0, "max_retries": 1}

    assert openai_compatible.client(**openai_args) is openai_compatible.client(**openai_args)
    assert openai_compatible.client(**openai_args) is not openai_compatible.client(**openai_args | {"max_retries": 0})
    assert gemini.client(**gemini_args) is gemini.client(**gemini_args)
    assert gemini.client(**gemini_args) is not gemini.client(**gemini_args | {"timeout": 6.0})


def test_providers_hold_their_gemini_client():
    """A genai.Client closes its HTTP client when garbage-collected: whoever calls keeps it."""
    embedder = gemini_embedder()
    chat = gemini_chat()

    assert embedder._client is gemini.client(api_key="gemini-upstream-test", timeout=TIMEOUT, max_retries=0)
    assert chat._client is embedder._client


def test_our_own_errors_pass_through_untranslated():
    raised = UpstreamBadResponse("Embedding provider openai returned an all-zero vector.")

    for translated in (
        openai_compatible.translated("Embedding provider openai", timeout=1.0, key_setting="OPENAI_API_KEY"),
        gemini.translated("Embedding provider gemini", timeout=1.0),
    ):
        with pytest.raises(UpstreamBadResponse) as caught, translated:
            raise raised
        assert caught.value is raised
