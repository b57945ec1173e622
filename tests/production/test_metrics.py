"""/metrics: django-prometheus's and the product's own, moving with traffic, and guarded
by METRICS_TOKEN in production."""

import pytest
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from raptorflow import metrics


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_expose_django_and_product_families(anon_client, db):
    samples = scrape(anon_client)
    names = {name for name, _ in samples}
    assert any(name.startswith("django_http_requests") for name in names)
    # Read at scrape time: the in-process job queue (no broker in tests).
    assert ("raptorflow_background_queue_depth", (("queue", "in_process"),)) in samples


def test_request_counters_move(anon_client, db):
    before = scrape(anon_client)
    for _ in range(3):
        anon_client.get("/health")
    after = scrape(anon_client)
    key = "django_http_responses_total_by_status_view_method_total"
    labels = {"method": "GET", "status": "200", "view": "health"}
    assert value(after, key, **labels) - value(before, key, **labels) == 3


def test_rejected_tokens_are_counted(anon_client, db):
    before = value(scrape(anon_client), "raptorflow_auth_failures_total", code="token_not_valid")
    anon_client.get("/api/auth/me", HTTP_AUTHORIZATION="Bearer not-a-token")
    anon_client.get("/api/auth/me", HTTP_AUTHORIZATION="Bearer still-not-a-token")
    after = value(scrape(anon_client), "raptorflow_auth_failures_total", code="token_not_valid")
    assert after - before == 2


def test_backfill_progress_is_shown_from_the_shared_cache(anon_client, db):
    metrics.report_backfill_progress(done=40, total=100, model="all-MiniLM-L6-v2")
    samples = scrape(anon_client)
    assert value(samples, "raptorflow_backfill_messages", state="done", model="all-MiniLM-L6-v2") == 40
    assert value(samples, "raptorflow_backfill_messages", state="total", model="all-MiniLM-L6-v2") == 100


def test_embedding_call_records_latency_texts_and_errors(anon_client, db):
    before = scrape(anon_client)
    with metrics.embedding_call("openai", 3):
        pass
    with pytest.raises(TimeoutError), metrics.embedding_call("openai", 1):
        raise TimeoutError
    after = scrape(anon_client)
    assert value(after, "raptorflow_embedded_texts_total", provider="openai") - value(
        before, "raptorflow_embedded_texts_total", provider="openai") == 3
    assert value(after, "raptorflow_embedding_errors_total", provider="openai", error="TimeoutError") - value(
        before, "raptorflow_embedding_errors_total", provider="openai", error="TimeoutError") == 1
    for outcome in ("ok", "error"):
        assert value(after, "raptorflow_embedding_seconds_count", provider="openai", outcome=outcome) - value(
            before, "raptorflow_embedding_seconds_count", provider="openai", outcome=outcome) == 1


# --- METRICS_TOKEN ------------------------------------------------------------------------


@override_settings(PRODUCTION=True, METRICS_TOKEN="scrape-me-0123456789")
def test_production_metrics_without_a_token_are_401(anon_client, db):
    response = anon_client.get("/metrics")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'


@override_settings(PRODUCTION=True, METRICS_TOKEN="scrape-me-0123456789")
def test_production_metrics_with_a_wrong_token_are_403(anon_client, db):
    response = anon_client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-wrong")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@override_settings(PRODUCTION=True, METRICS_TOKEN="scrape-me-0123456789")
def test_production_metrics_with_the_token_are_served(anon_client, db):
    samples = scrape(anon_client, HTTP_AUTHORIZATION="Bearer scrape-me-0123456789")
    assert any(name.startswith("django_http_requests") for name, _ in samples)


@override_settings(PRODUCTION=True, METRICS_TOKEN="")
def test_production_metrics_without_a_configured_token_are_503(anon_client, db):
    response = anon_client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_configured"


@override_settings(PRODUCTION=False, METRICS_TOKEN="dev-token")
def test_a_configured_token_is_required_outside_production_too(anon_client, db):
    assert anon_client.get("/metrics").status_code == 401
    assert anon_client.get("/metrics", HTTP_AUTHORIZATION="Bearer dev-token").status_code == 200


# --- the product's metrics, moved by real API calls ---------------------------------------


def test_a_reply_with_a_fallback_moves_chat_latency_tokens_and_fallbacks(owner_client, org, owner, settings,
                                                                          respx_mock, anon_client):
    import httpx

    from conversations.services import conversation_create
    from tests.rag.conftest import GEMINI_URL, OPENAI_URL, gemini_response

    settings.OPENAI_API_KEY, settings.GEMINI_API_KEY, settings.OPENROUTER_API_KEY = "sk-test", "g-test", ""
    settings.OPENAI_BASE_URL = ""
    settings.CHAT_PROVIDERS = ["openai", "gemini"]
    respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(503, json={"error": {"message": "down"}}))
    respx_mock.post(GEMINI_URL).mock(
        return_value=httpx.Response(200, json=gemini_response("Run a 10k.", prompt_tokens=40, completion_tokens=9))
    )
    conversation = conversation_create(organization=org, owner=owner, title="Launch", agent_type="strategy")
    before = scrape(anon_client)

    response = owner_client.post(f"/api/conversations/{conversation.id}/reply", {"content": "Ideas?"}, format="json")

    assert response.status_code == 201, response.json()
    after = scrape(anon_client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("raptorflow_chat_provider_seconds_count", provider="openai", outcome="error") == 1
    assert moved("raptorflow_chat_provider_seconds_count", provider="gemini", outcome="ok") == 1
    assert moved("raptorflow_chat_tokens_total", provider="gemini", kind="prompt") == 40
    assert moved("raptorflow_chat_tokens_total", provider="gemini", kind="completion") == 9
    assert moved("raptorflow_chat_fallbacks_total", provider="openai", reason="answered HTTP 503") == 1


def test_a_message_an_embedding_and_a_search_move_their_metrics(owner_client, anon_client, settings,
                                                                django_capture_on_commit_callbacks):
    settings.BACKGROUND_JOBS_EAGER = True  # the new message's embedding job runs at commit
    settings.CELERY_BROKER_URL = ""
    settings.EMBEDDING_PROVIDER = "local"
    conversation = owner_client.post("/api/conversations", {"title": "Ads", "agent_type": "strategy"}, format="json")
    conversation_id = conversation.json()["id"]
    before = scrape(anon_client)

    with django_capture_on_commit_callbacks(execute=True):
        created = owner_client.post(f"/api/conversations/{conversation_id}/messages",
                                    {"role": "user", "content": "How much should we spend on ads?"}, format="json")
    embedded = owner_client.post("/api/search/embed-text", {"text": "advertising budget"}, format="json")
    found = owner_client.post(f"/api/search/semantic-search?conversation_id={conversation_id}",
                              {"query": "ad spend", "limit": 5}, format="json")

    assert (created.status_code, embedded.status_code, found.status_code) == (201, 200, 200), found.json()
    after = scrape(anon_client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    # The message's job, embed-text and the search query: three local embedding calls.
    assert moved("raptorflow_embedding_seconds_count", provider="local", outcome="ok") == 3
    assert moved("raptorflow_embedded_texts_total", provider="local") == 3
    assert moved("raptorflow_background_jobs_total", task="embed_message", outcome="created") == 1
    assert moved("raptorflow_search_seconds_count", mode="vector") == 1
    assert moved("raptorflow_search_results_sum", mode="vector") == len(found.json()["results"]) == 1
