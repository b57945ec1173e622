"""OpenAI and Gemini embeddings through their real SDKs, HTTP mocked with respx (and one
real slow server on 127.0.0.1 for the timeout): batching, retries, timeouts and bad
answers become clear 502/503 errors naming the provider. Only EMBEDDING_PROVIDER picks
the provider."""

import json
import time

import httpx
import pytest
from werkzeug import Response as WerkzeugResponse

from search.models import MessageEmbedding
from search.providers import get_embedding_provider
from tests.search.conftest import add_message

pytestmark = pytest.mark.django_db

OPENAI_URL = "https://api.openai.com/v1/embeddings"
GEMINI_URL_PATTERN = r"^https://generativelanguage\.googleapis\.com/.*/models/gemini-embedding-001:batchEmbedContents$"


def openai_body(inputs, dims=1536):
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": [0.01 * ((i % 7) + 1)] * dims} for i in range(len(inputs))
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
    }


def openai_handler(dims=1536):
    def handler(request):
        return httpx.Response(200, json=openai_body(json.loads(request.content)["input"], dims))

    return handler


def gemini_handler(dims=768):
    def handler(request):
        requests = json.loads(request.content)["requests"]
        return httpx.Response(200, json={"embeddings": [{"values": [0.02] * dims} for _ in requests]})

    return handler


@pytest.fixture
def use_openai(settings):
    settings.EMBEDDING_PROVIDER = "openai"
    settings.OPENAI_API_KEY = "sk-test-embeddings"


@pytest.fixture
def use_gemini(settings):
    settings.EMBEDDING_PROVIDER = "gemini"
    settings.GEMINI_API_KEY = "gemini-test-key"


# --- choosing the provider ------------------------------------------------------------


def test_a_key_added_for_chat_never_switches_embeddings(settings, respx_mock, owner_client, local_model):
    settings.OPENAI_API_KEY = "sk-chat-only"
    settings.GEMINI_API_KEY = "gemini-chat-only"
    openai_route = respx_mock.post(OPENAI_URL)
    gemini_route = respx_mock.post(url__regex=GEMINI_URL_PATTERN)
    response = owner_client.post("/api/search/embed-text", {"text": "budget allocation"}, format="json")
    assert response.status_code == 200
    assert (response.json()["model"], response.json()["dimensions"]) == ("all-MiniLM-L6-v2-int8", 384)
    assert not openai_route.called and not gemini_route.called


def test_openai_without_a_key_is_a_clear_503(settings, owner_client):
    settings.EMBEDDING_PROVIDER = "openai"
    response = owner_client.post("/api/search/embed-text", {"text": "hello"}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_configured"
    assert "OPENAI_API_KEY" in response.json()["error"]["message"]


def test_an_unknown_provider_is_a_clear_503(settings, owner_client):
    settings.EMBEDDING_PROVIDER = "cohere"
    response = owner_client.post("/api/search/embed-text", {"text": "hello"}, format="json")
    assert response.status_code == 503
    assert "EMBEDDING_PROVIDER" in response.json()["error"]["message"]


# --- OpenAI ---------------------------------------------------------------------------


def test_openai_embed_text_through_the_sdk(use_openai, respx_mock, owner_client):
    route = respx_mock.post(OPENAI_URL).mock(side_effect=openai_handler())
    response = owner_client.post("/api/search/embed-text", {"text": "budget allocation"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["dimensions"], len(body["embedding"])) == ("text-embedding-3-small", 1536, 1536)
    sent = json.loads(route.calls.last.request.content)
    assert sent["model"] == "text-embedding-3-small" and sent["input"] == ["budget allocation"]
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-test-embeddings"


def test_openai_batches_at_most_2048_inputs_per_request(use_openai, settings, respx_mock):
    settings.EMBEDDING_DIMENSIONS = 8  # shortened text-embedding-3 vectors keep this test small
    route = respx_mock.post(OPENAI_URL).mock(side_effect=openai_handler(dims=8))
    vectors = get_embedding_provider().embed([f"text {i}" for i in range(2050)])
    assert len(vectors) == 2050 and all(len(vector) == 8 for vector in vectors)
    sent = [json.loads(call.request.content) for call in route.calls]
    assert [len(body["input"]) for body in sent] == [2048, 2]
    assert all(body["dimensions"] == 8 for body in sent)


def test_openai_is_retried_after_a_429(use_openai, respx_mock, owner_client):
    rate_limited = httpx.Response(429, headers={"retry-after-ms": "10"}, json={"error": {"message": "slow down"}})
    route = respx_mock.post(OPENAI_URL).mock(side_effect=[rate_limited, openai_handler()])
    response = owner_client.post("/api/search/embed-text", {"text": "hello"}, format="json")
    assert response.status_code == 200
    assert route.call_count == 2


def test_openai_still_rate_limited_after_retries_is_a_503(use_openai, settings, respx_mock, owner_client):
    settings.PROVIDER_MAX_RETRIES = 1
    rate_limited = httpx.Response(429, headers={"retry-after-ms": "10"}, json={"error": {"message": "slow down"}})
    route = respx_mock.post(OPENAI_URL).mock(return_value=rate_limited)
    response = owner_client.post("/api/search/embed-text", {"text": "hello"}, format="json")
    assert response.status_code == 503
    assert route.call_count == 2
    assert "openai" in response.json()["error"]["message"]


def test_openai_server_errors_are_retried_then_a_503(use_openai, settings, respx_mock, owner_client):
    settings.PROVIDER_MAX_RETRIES = 1
    failing = httpx.Response(500, headers={"retry-after-ms": "10"}, json={"error": {"message": "oops"}})
    route = respx_mock.post(OPENAI_URL).mock(return_value=failing)
    response = owner_client.post("/api/search/embed-text", {"text": "hello"}, format="json")
    assert response.status_code == 503
    assert route.call_count == 2


def test_openai_timeout_is_a_503_naming_the_provider(use_openai, settings, httpserver, owner_client):
    """A real server on 127.0.0.1 that answers too late: the configured timeout applies."""
    settings.PROVIDER_TIMEOUT_SECONDS = 0.3
    settings.PROVIDER_MAX_RETRIES = 0
    settings.OPENAI_BASE_URL = httpserver.url_for("/v1")

    def slow(request):
        time.sleep(1.0)
        return WerkzeugResponse(json.dumps(openai_body(["x"])), content_type="application/json")

    httpserver.expect_request("/v1/embeddings", method="POST").respond_with_handler(slow)
    response = owner_client.post("/api/search/embed-text", {"text": "hello"}, format="json")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "upstream_unavailable"
    assert "openai" in error["message"] and "timed out" in error["message"]


def test_openai_vector_of_the_wrong_size_is_a_clear_502(use_openai, respx_mock, owner_client, conversation):
    respx_mock.post(OPENAI_URL).mock(side_effect=openai_handler(dims=1535))
    message = add_message(conversation, "How much should we spend on ads?")
    response = owner_client.post(
        "/api/search/embed-and-store",
        {"message_id": str(message.id), "conversation_id": str(conversation.id)},
        format="json",
    )
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_bad_response"
    assert "openai" in error["message"] and "1535" in error["message"] and "1536" in error["message"]
    assert not MessageEmbedding.objects.exists()


def test_openai_rejected_key_is_a_503(use_openai, respx_mock, owner_client):
    respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(401, json={"error": {"message": "bad key"}}))
    response = owner_client.post("/api/search/embed-text", {"text": "hello"}, format="json")
    assert response.status_code == 503
    assert "OPENAI_API_KEY" in response.json()["error"]["message"]


def test_openai_garbage_answer_is_a_502(use_openai, respx_mock, owner_client):
    respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(200, json={"data": [{"index": 0}]}))
    response = owner_client.post("/api/search/embed-text", {"text": "hello"}, format="json")
    assert response.status_code == 502
    assert "openai" in response.json()["error"]["message"]


def test_openai_vectors_are_stored_and_searched_as_their_own_model(use_openai, respx_mock, owner_client, conversation):
    respx_mock.post(OPENAI_URL).mock(side_effect=openai_handler())
    message = add_message(conversation, "How much should we spend on ads?")
    stored = owner_client.post(
        "/api/search/embed-and-store",
        {"message_id": str(message.id), "conversation_id": str(conversation.id)},
        format="json",
    )
    assert stored.status_code == 201
    row = MessageEmbedding.objects.get(message=message)
    assert (row.model, row.dimensions, len(row.embedding)) == ("text-embedding-3-small", 1536, 1536)
    search = owner_client.post("/api/search/semantic-search", {"query": "ads"}, format="json")
    assert search.status_code == 200
    assert search.json()["model"] == "text-embedding-3-small"
    assert [hit["message_id"] for hit in search.json()["results"]] == [str(message.id)]


def test_vectors_of_another_model_are_never_compared(use_openai, respx_mock, owner_client, corpus):
    """The corpus holds local MiniLM vectors only; searching with OpenAI finds none of them."""
    respx_mock.post(OPENAI_URL).mock(side_effect=openai_handler())
    response = owner_client.post("/api/search/semantic-search", {"query": "budget allocation"}, format="json")
    assert response.status_code == 200
    assert response.json()["results"] == []


# --- Gemini ---------------------------------------------------------------------------


def test_gemini_embed_text_asks_for_768_dimensions(use_gemini, respx_mock, owner_client):
    route = respx_mock.post(url__regex=GEMINI_URL_PATTERN).mock(side_effect=gemini_handler())
    response = owner_client.post("/api/search/embed-text", {"text": "budget allocation"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["dimensions"], len(body["embedding"])) == ("gemini-embedding-001", 768, 768)
    (sent,) = json.loads(route.calls.last.request.content)["requests"]
    assert sent["outputDimensionality"] == 768
    assert sent["content"]["parts"][0]["text"] == "budget allocation"
    assert route.calls.last.request.headers["x-goog-api-key"] == "gemini-test-key"


def test_gemini_batches_at_most_100_texts_per_request(use_gemini, respx_mock):
    route = respx_mock.post(url__regex=GEMINI_URL_PATTERN).mock(side_effect=gemini_handler())
    vectors = get_embedding_provider().embed([f"text {i}" for i in range(150)])
    assert len(vectors) == 150
    assert [len(json.loads(call.request.content)["requests"]) for call in route.calls] == [100, 50]


def test_gemini_is_retried_after_a_429(use_gemini, respx_mock, owner_client):
    rate_limited = httpx.Response(
        429, json={"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}
    )
    route = respx_mock.post(url__regex=GEMINI_URL_PATTERN).mock(side_effect=[rate_limited, gemini_handler()])
    response = owner_client.post("/api/search/embed-text", {"text": "hello"}, format="json")
    assert response.status_code == 200
    assert route.call_count == 2


def test_gemini_timeout_is_a_503(use_gemini, respx_mock, owner_client):
    respx_mock.post(url__regex=GEMINI_URL_PATTERN).mock(side_effect=httpx.ReadTimeout("too slow"))
    response = owner_client.post("/api/search/embed-text", {"text": "hello"}, format="json")
    assert response.status_code == 503
    assert "gemini" in response.json()["error"]["message"] and "timed out" in response.json()["error"]["message"]


def test_gemini_server_errors_after_retries_are_a_503(use_gemini, settings, respx_mock, owner_client):
    settings.PROVIDER_MAX_RETRIES = 1
    failing = httpx.Response(503, json={"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
    route = respx_mock.post(url__regex=GEMINI_URL_PATTERN).mock(return_value=failing)
    response = owner_client.post("/api/search/embed-text", {"text": "hello"}, format="json")
    assert response.status_code == 503
    assert route.call_count == 2


def test_gemini_vector_of_the_wrong_size_is_a_clear_502(use_gemini, respx_mock, owner_client):
    respx_mock.post(url__regex=GEMINI_URL_PATTERN).mock(side_effect=gemini_handler(dims=3072))
    response = owner_client.post("/api/search/embed-text", {"text": "hello"}, format="json")
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "gemini" in message and "3072" in message and "768" in message


def test_gemini_missing_vectors_are_a_502(use_gemini, respx_mock, owner_client):
    respx_mock.post(url__regex=GEMINI_URL_PATTERN).mock(return_value=httpx.Response(200, json={"embeddings": []}))
    response = owner_client.post("/api/search/embed-text", {"text": "hello"}, format="json")
    assert response.status_code == 502
    assert "gemini" in response.json()["error"]["message"]
