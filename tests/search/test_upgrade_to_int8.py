"""Upgrading a deployment whose vectors came from all-MiniLM-L6-v2 (sentence-transformers on
torch, before the ONNX provider) to the int8 default without a gap: migration search.0003
keeps the old model active (served by its fp32 ONNX export), search answers before, during
and after `reindex_embeddings --model all-MiniLM-L6-v2-int8`, and afterwards only int8
vectors are left."""

import importlib
import io

import pytest
from django.apps import apps
from django.core.management import call_command

from search import services, vector_index
from search.models import ActiveEmbeddingModel, MessageEmbedding
from search.providers import active_spec
from search.providers.local import FP32_MODEL_NAME, MODEL_NAME, LocalEmbeddingProvider
from tests.search.conftest import MARKETING_CORPUS, add_message

pytestmark = pytest.mark.django_db

ADS = MARKETING_CORPUS[0]
LATE = "Which influencer agencies should we shortlist for the spring launch?"

upgrade = importlib.import_module("search.migrations.0003_minilm_int8")


def _search(client, query):
    response = client.post("/api/search/semantic-search", {"query": query, "limit": 3}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    return body["model"], [hit["content"] for hit in body["results"]]


@pytest.fixture
def old_deployment(conversation):
    """Messages embedded by the old default model, and no recorded switch."""
    messages = [add_message(conversation, text) for text in MARKETING_CORPUS]
    services.embeddings_store(
        items=[(m, m.content) for m in messages], provider=LocalEmbeddingProvider(model=FP32_MODEL_NAME),
        on_purpose=False,
    )
    assert not ActiveEmbeddingModel.objects.exists()
    return messages


def test_search_answers_before_during_and_after_the_reindex(old_deployment, conversation, owner_client, monkeypatch):
    # Deploying the new code: without the migration the int8 default would find nothing.
    assert active_spec().model == MODEL_NAME
    upgrade.keep_serving_the_old_local_model(apps, None)
    assert (active_spec().provider, active_spec().model) == ("local", FP32_MODEL_NAME)

    # Before: the old vectors, queries embedded by the fp32 ONNX export of the same model.
    model, results = _search(owner_client, "advertising budget for next quarter")
    assert (model, results[0]) == (FP32_MODEL_NAME, ADS)

    during = {}
    real_switch = services.active_model_switch

    def switch_after_looking(*, spec):
        # Every message has its int8 vector by now; search still serves the old model.
        assert set(MessageEmbedding.objects.filter(model=MODEL_NAME).values_list("message_id", flat=True)) == {
            m.id for m in old_deployment
        }
        during["before_switch"] = _search(owner_client, "advertising budget for next quarter")
        add_message(conversation, LATE)  # arrives between the catch-up pass and the switch
        row = real_switch(spec=spec)
        during["after_switch"] = _search(owner_client, "advertising budget for next quarter")
        return row

    monkeypatch.setattr(services, "active_model_switch", switch_after_looking)
    out = io.StringIO()
    call_command("reindex_embeddings", "--model", MODEL_NAME, "--batch-size", "3", stdout=out, stderr=io.StringIO())
    assert f"Search now uses {MODEL_NAME}" in out.getvalue()

    assert during["before_switch"][0] == FP32_MODEL_NAME and during["before_switch"][1][0] == ADS
    assert during["after_switch"][0] == MODEL_NAME and during["after_switch"][1][0] == ADS

    # After: int8 only, the old vectors and their index gone, the late message findable.
    assert (active_spec().provider, active_spec().model) == ("local", MODEL_NAME)
    assert set(MessageEmbedding.objects.values_list("model", flat=True)) == {MODEL_NAME}
    assert MessageEmbedding.objects.count() == len(MARKETING_CORPUS) + 1
    assert vector_index.index_exists(MODEL_NAME) and not vector_index.index_exists(FP32_MODEL_NAME)
    model, results = _search(owner_client, "advertising budget for next quarter")
    assert (model, results[0]) == (MODEL_NAME, ADS)
    model, results = _search(owner_client, "shortlist of influencer agencies")
    assert (model, results[0]) == (MODEL_NAME, LATE)


def test_a_new_deployment_starts_on_int8_with_its_index(owner_client, conversation):
    upgrade.keep_serving_the_old_local_model(apps, None)  # nothing embedded yet: nothing pinned
    assert not ActiveEmbeddingModel.objects.exists()
    assert vector_index.index_exists(MODEL_NAME)
    add_message(conversation, ADS)
    call_command("backfill_embeddings", stdout=io.StringIO(), stderr=io.StringIO())
    assert set(MessageEmbedding.objects.values_list("model", flat=True)) == {MODEL_NAME}
    assert _search(owner_client, "advertising budget") == (MODEL_NAME, [ADS])


@pytest.mark.parametrize("configured", [{"EMBEDDING_MODEL": FP32_MODEL_NAME}, {"EMBEDDING_PROVIDER": "openai"}])
def test_an_explicit_configuration_is_not_overridden_by_the_upgrade(old_deployment, settings, configured):
    for name, value in configured.items():
        setattr(settings, name, value)
    upgrade.keep_serving_the_old_local_model(apps, None)
    assert not ActiveEmbeddingModel.objects.exists()
