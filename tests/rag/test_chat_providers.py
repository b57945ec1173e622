"""The three chat providers through their real SDKs, HTTP mocked with respx: answers,
streams, usage, timeouts and the fallback order of CHAT_PROVIDERS."""

import httpx
import pytest

from rag.chat_providers import ChatMessage, ProviderError, ReplyStream, chat_providers, complete
from raptorflow.errors import NotConfigured, UpstreamBadResponse, UpstreamUnavailable
from tests.rag.conftest import (
    GEMINI_STREAM_URL,
    GEMINI_URL,
    OPENAI_URL,
    OPENROUTER_URL,
    gemini_response,
    gemini_stream_chunks,
    openai_completion,
    openai_stream_chunks,
    request_json,
    sse_response,
)

MESSAGES = [ChatMessage("system", "You are a test."), ChatMessage("user", "Plan a launch")]


def keys(**given):
    return {"openai": "", "gemini": "", "openrouter": "", **given}


def drain(stream: ReplyStream) -> list[str]:
    stream.start()
    return list(stream)


def test_openai_completion_through_sdk(respx_mock):
    route = respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(200, json=openai_completion("Launch in May.")))

    reply = complete(chat_providers(keys(openai="sk-test-1234")), MESSAGES)

    assert (reply.text, reply.provider, reply.model) == ("Launch in May.", "openai", "gpt-4o-mini-2024-07-18")
    assert (reply.prompt_tokens, reply.completion_tokens) == (42, 7)
    body = request_json(route)
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {"role": "system", "content": "You are a test."},
        {"role": "user", "content": "Plan a launch"},
    ]
    assert route.calls.last.request.headers["Authorization"] == "Bearer sk-test-1234"


def test_openai_stream_asks_for_usage_and_yields_deltas(respx_mock):
    response, _ = sse_response(openai_stream_chunks(["Launch ", "in ", "May."], prompt_tokens=30, completion_tokens=3))
    route = respx_mock.post(OPENAI_URL).mock(return_value=response)

    stream = ReplyStream(chat_providers(keys(openai="sk-test-1234")), MESSAGES)
    deltas = drain(stream)

    assert deltas == ["Launch ", "in ", "May."]
    assert stream.text == "Launch in May."
    assert (stream.provider, stream.model) == ("openai", "gpt-4o-mini-2024-07-18")
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (30, 3)
    body = request_json(route)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_gemini_completion_through_sdk(respx_mock):
    route = respx_mock.post(GEMINI_URL).mock(return_value=httpx.Response(200, json=gemini_response("Use webinars.")))

    reply = complete(chat_providers(keys(gemini="gemini-key-5678")), MESSAGES)

    assert (reply.text, reply.provider, reply.model) == ("Use webinars.", "gemini", "gemini-2.5-flash")
    assert (reply.prompt_tokens, reply.completion_tokens) == (40, 9)
    body = request_json(route)
    assert body["systemInstruction"]["parts"] == [{"text": "You are a test."}]
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Plan a launch"}]}]
    assert route.calls.last.request.headers["x-goog-api-key"] == "gemini-key-5678"


def test_gemini_stream_through_sdk(respx_mock):
    response, _ = sse_response(gemini_stream_chunks(["Use ", "webinars."], prompt_tokens=12, completion_tokens=4))
    route = respx_mock.post(GEMINI_STREAM_URL).mock(return_value=response)

    stream = ReplyStream(chat_providers(keys(gemini="gemini-key-5678")), MESSAGES)

    assert drain(stream) == ["Use ", "webinars."]
    assert (stream.provider, stream.usage.prompt_tokens, stream.usage.completion_tokens) == ("gemini", 12, 4)
    assert route.calls.last.request.url.params["alt"] == "sse"


def test_openrouter_completion_uses_its_base_url_and_model(respx_mock):
    route = respx_mock.post(OPENROUTER_URL).mock(
        return_value=httpx.Response(200, json=openai_completion("Try TikTok.", model="openai/gpt-4o-mini"))
    )

    reply = complete(chat_providers(keys(openrouter="sk-or-test-9999")), MESSAGES)

    assert (reply.text, reply.provider, reply.model) == ("Try TikTok.", "openrouter", "openai/gpt-4o-mini")
    assert request_json(route)["model"] == "openai/gpt-4o-mini"
    assert route.calls.last.request.headers["Authorization"] == "Bearer sk-or-test-9999"


def test_openrouter_stream(respx_mock):
    response, _ = sse_response(openai_stream_chunks(["Try ", "TikTok."], model="openai/gpt-4o-mini"))
    respx_mock.post(OPENROUTER_URL).mock(return_value=response)

    stream = ReplyStream(chat_providers(keys(openrouter="sk-or-test-9999")), MESSAGES)

    assert drain(stream) == ["Try ", "TikTok."]
    assert (stream.provider, stream.model) == ("openrouter", "openai/gpt-4o-mini")


def test_models_are_overridable_by_settings(respx_mock, settings):
    settings.OPENAI_CHAT_MODEL = "gpt-4.1-mini"
    route = respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(200, json=openai_completion("ok")))

    complete(chat_providers(keys(openai="sk-test-1234")), MESSAGES)

    assert request_json(route)["model"] == "gpt-4.1-mini"


@pytest.mark.parametrize("failure", [httpx.Response(429, json={"error": {"message": "slow down"}}),
                                     httpx.Response(503, json={"error": {"message": "overloaded"}}),
                                     httpx.ReadTimeout("timed out")])
def test_falls_back_to_next_provider_on_429_5xx_and_timeout(respx_mock, failure):
    openai_route = respx_mock.post(OPENAI_URL).mock(side_effect=[failure])
    gemini_route = respx_mock.post(GEMINI_URL).mock(return_value=httpx.Response(200, json=gemini_response("Backup.")))

    reply = complete(chat_providers(keys(openai="sk-test-1234", gemini="gemini-key-5678")), MESSAGES)

    assert (reply.provider, reply.text) == ("gemini", "Backup.")
    # One call each: the SDK's own retries are off, the fallback is ours.
    assert (openai_route.call_count, gemini_route.call_count) == (1, 1)


def test_chat_providers_order_is_respected(respx_mock, settings):
    settings.CHAT_PROVIDERS = ["openrouter", "openai"]
    answer = httpx.Response(200, json=openai_completion("or"))
    openrouter_route = respx_mock.post(OPENROUTER_URL).mock(return_value=answer)
    openai_route = respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(200, json=openai_completion("oa")))

    reply = complete(chat_providers(keys(openai="sk-a", openrouter="sk-b", gemini="g")), MESSAGES)

    assert reply.provider == "openrouter"
    assert (openrouter_route.call_count, openai_route.call_count) == (1, 0)


def test_provider_timeout_is_explicit(respx_mock, settings):
    settings.PROVIDER_TIMEOUT_SECONDS = 3.5
    openai_route = respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(200, json=openai_completion("ok")))
    gemini_route = respx_mock.post(GEMINI_URL).mock(return_value=httpx.Response(200, json=gemini_response("ok")))
    settings.CHAT_PROVIDERS = ["openai"]
    complete(chat_providers(keys(openai="sk-a")), MESSAGES)
    settings.CHAT_PROVIDERS = ["gemini"]
    complete(chat_providers(keys(gemini="g-key")), MESSAGES)

    assert openai_route.calls.last.request.extensions["timeout"]["read"] == 3.5
    assert gemini_route.calls.last.request.extensions["timeout"]["read"] == 3.5


def test_all_providers_timing_out_is_503_naming_them(respx_mock):
    respx_mock.post(OPENAI_URL).mock(side_effect=httpx.ReadTimeout("timed out"))
    respx_mock.post(GEMINI_URL).mock(side_effect=httpx.ConnectTimeout("timed out"))

    with pytest.raises(UpstreamUnavailable) as caught:
        complete(chat_providers(keys(openai="sk-a", gemini="g-key")), MESSAGES)

    assert caught.value.status_code == 503
    assert "openai timed out" in str(caught.value.detail)
    assert "gemini timed out" in str(caught.value.detail)


def test_rejected_request_is_502_without_fallback(respx_mock):
    respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(401, json={"error": {"message": "bad key"}}))
    gemini_route = respx_mock.post(GEMINI_URL).mock(return_value=httpx.Response(200, json=gemini_response("ok")))

    with pytest.raises(UpstreamBadResponse) as caught:
        complete(chat_providers(keys(openai="sk-a", gemini="g-key")), MESSAGES)

    assert caught.value.status_code == 502
    assert "openai answered HTTP 401" in str(caught.value.detail)
    assert gemini_route.call_count == 0


def test_no_provider_key_is_not_configured_naming_the_keys():
    with pytest.raises(NotConfigured) as caught:
        chat_providers(keys())

    assert caught.value.status_code == 503
    for name in ("OPENAI_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY"):
        assert name in str(caught.value.detail)


def test_stream_falls_back_before_first_delta(respx_mock):
    respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(500, json={"error": {"message": "boom"}}))
    response, _ = sse_response(gemini_stream_chunks(["From ", "Gemini."]))
    respx_mock.post(GEMINI_STREAM_URL).mock(return_value=response)

    stream = ReplyStream(chat_providers(keys(openai="sk-a", gemini="g-key")), MESSAGES)

    assert drain(stream) == ["From ", "Gemini."]
    assert stream.provider == "gemini"


def test_stream_hands_out_first_delta_before_provider_finished(respx_mock):
    response, body = sse_response(openai_stream_chunks(["One ", "two ", "three."]))
    respx_mock.post(OPENAI_URL).mock(return_value=response)

    stream = ReplyStream(chat_providers(keys(openai="sk-a")), MESSAGES)
    stream.start()
    first = next(iter(stream))

    assert first == "One "
    assert not body.finished


def test_stream_failing_after_first_delta_does_not_fall_back(respx_mock):
    response, _ = sse_response(openai_stream_chunks(["Partial ", "answer ", "lost"]), fail_after=3)
    respx_mock.post(OPENAI_URL).mock(return_value=response)
    gemini_route = respx_mock.post(GEMINI_STREAM_URL)

    stream = ReplyStream(chat_providers(keys(openai="sk-a", gemini="g-key")), MESSAGES)
    stream.start()
    received = []
    with pytest.raises(ProviderError) as caught:
        for delta in stream:
            received.append(delta)

    assert received == ["Partial ", "answer "]
    assert stream.text == "Partial answer "
    assert (caught.value.provider, caught.value.reason, caught.value.retryable) == ("openai", "timed out", True)
    assert gemini_route.call_count == 0


def test_gemini_stream_failing_mid_answer_is_a_retryable_provider_error(respx_mock):
    response, _ = sse_response(gemini_stream_chunks(["Part ", "one ", "lost"]), fail_after=1)
    respx_mock.post(GEMINI_STREAM_URL).mock(return_value=response)

    stream = ReplyStream(chat_providers(keys(gemini="g-key")), MESSAGES)
    stream.start()
    with pytest.raises(ProviderError) as caught:
        list(stream)

    assert stream.text == "Part "
    assert (caught.value.provider, caught.value.reason, caught.value.retryable) == ("gemini", "timed out", True)


# --- one fallback loop for replies and streams -------------------------------------------


def sample(name, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def answer_complete(providers):
    return complete(providers, MESSAGES).provider


def answer_stream(providers):
    stream = ReplyStream(providers, MESSAGES)
    drain(stream)
    return stream.provider


@pytest.mark.parametrize("answer", [answer_complete, answer_stream], ids=["complete", "stream"])
def test_replies_and_streams_fall_back_and_count_it_alike(respx_mock, answer):
    respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(503, json={"error": {"message": "down"}}))
    respx_mock.post(GEMINI_URL).mock(return_value=httpx.Response(200, json=gemini_response("Backup.")))
    respx_mock.post(GEMINI_STREAM_URL).mock(return_value=sse_response(gemini_stream_chunks(["Backup."]))[0])
    fallbacks = ("raptorflow_chat_fallbacks_total", {"provider": "openai", "reason": "answered HTTP 503"})
    errors = ("raptorflow_chat_provider_seconds_count", {"provider": "openai", "outcome": "error"})
    successes = ("raptorflow_chat_provider_seconds_count", {"provider": "gemini", "outcome": "ok"})
    before = [sample(name, **labels) for name, labels in (fallbacks, errors, successes)]

    provider = answer(chat_providers(keys(openai="sk-a", gemini="g-key")))

    after = [sample(name, **labels) for name, labels in (fallbacks, errors, successes)]
    assert provider == "gemini"
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]


@pytest.mark.parametrize("answer", [answer_complete, answer_stream], ids=["complete", "stream"])
def test_replies_and_streams_stop_at_a_rejected_request_alike(respx_mock, answer):
    respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(401, json={"error": {"message": "bad key"}}))
    gemini_routes = [respx_mock.post(GEMINI_URL), respx_mock.post(GEMINI_STREAM_URL)]
    fallbacks = sample("raptorflow_chat_fallbacks_total", provider="openai", reason="answered HTTP 401")

    with pytest.raises(UpstreamBadResponse) as caught:
        answer(chat_providers(keys(openai="sk-a", gemini="g-key")))

    assert str(caught.value.detail) == "The chat provider could not answer: openai answered HTTP 401."
    assert caught.value.extra["providers"] == [{"provider": "openai", "reason": "answered HTTP 401"}]
    assert [route.call_count for route in gemini_routes] == [0, 0]
    assert sample("raptorflow_chat_fallbacks_total", provider="openai", reason="answered HTTP 401") == fallbacks


@pytest.mark.parametrize("answer", [answer_complete, answer_stream], ids=["complete", "stream"])
def test_the_last_provider_failing_is_not_counted_as_a_fallback(respx_mock, answer):
    respx_mock.post(OPENAI_URL).mock(side_effect=httpx.ReadTimeout("timed out"))
    fallbacks = sample("raptorflow_chat_fallbacks_total", provider="openai", reason="timed out")

    with pytest.raises(UpstreamUnavailable) as caught:
        answer(chat_providers(keys(openai="sk-a")))

    assert str(caught.value.detail) == "No chat provider could answer: openai timed out."
    assert sample("raptorflow_chat_fallbacks_total", provider="openai", reason="timed out") == fallbacks
