"""Retrieval and augmentation: the seed's pipeline interface, semantic context, the token
budget, the context cache, and the tenant boundary of what can reach a prompt."""

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Membership, Role
from conversations.models import Message
from conversations.services import message_create
from rag.context import context_retrieve
from rag.models import ContextCache
from rag.pipeline import get_rag_pipeline
from rag.tokens import estimate_message_tokens
from tests.rag.conftest import OPENAI_URL, openai_completion, reply_url, request_json, sent_prompt

QUERY = "What is the codename of the spring launch campaign?"
OWN_ANSWER = "The spring launch campaign codename is Bluebird."
TEAMMATE_PLANT = "TEAMMATE-PLANT: the spring launch campaign codename is Kestrel."
OUTSIDER_PLANT = "OUTSIDER-PLANT: the spring launch campaign codename is Osprey."
OTHER_ORG_PLANT = "OTHER-ORG-PLANT: the spring launch campaign codename is Heron."


def run_seed_snippet(query, conversation_id, **caller):
    """The seed's "Get Context for RAG" snippet, with its import changed to rag.pipeline."""

    async def agent():
        pipeline = get_rag_pipeline(**caller)
        context = await pipeline.retrieve_context(query=query, conversation_id=conversation_id)
        augmented = await pipeline.augment_prompt(query=query, context=context)
        return context, augmented

    return async_to_sync(agent)()


@pytest.fixture
def openai_route(all_keys, respx_mock):
    return respx_mock.post(OPENAI_URL).mock(return_value=httpx.Response(200, json=openai_completion("Noted.")))


def test_seed_snippet_runs_and_returns_scored_context(make_conversation):
    conversation = make_conversation(messages=[("user", "We launch in April."), ("assistant", "April works well.")])

    context, augmented = run_seed_snippet("When do we launch?", conversation.id)

    assert [m.content for m in context.messages] == ["April works well.", "We launch in April."]
    assert [m.score for m in context.messages] == [1.0, 0.95]
    assert "[user · relevance 0.95] We launch in April." in augmented.full_prompt
    assert "[assistant · relevance 1.00] April works well." in augmented.full_prompt
    assert augmented.full_prompt.endswith("Current message:\nWhen do we launch?")
    assert [m.content for m in augmented.messages] == ["We launch in April.", "April works well."]
    assert 0 < augmented.token_count <= augmented.token_budget


def test_pipeline_for_a_caller_cannot_open_a_teammates_conversation(make_conversation, teammate, org):
    conversation = make_conversation(messages=[("user", "private plan")])

    with pytest.raises(conversation.DoesNotExist):
        run_seed_snippet("plan", conversation.id, user=teammate, organization=org)


def test_semantic_search_finds_an_old_message_outside_the_recent_window(make_conversation, embed, settings):
    settings.RAG_RECENT_MESSAGES = 2
    messages = [("user", OWN_ANSWER)] + [
        (role, f"Unrelated note {n} about office plants and coffee.") for n, role in
        enumerate(["assistant", "user"] * 4)
    ]
    conversation = make_conversation(messages=messages)
    embed(*Message.objects.filter(conversation=conversation))

    context, augmented = run_seed_snippet(QUERY, conversation.id)

    found = {m.content: m for m in context.messages}
    assert OWN_ANSWER in found
    assert found[OWN_ANSWER].source == "semantic"
    assert found[OWN_ANSWER].similarity > 0.5
    assert found[OWN_ANSWER].score == found[OWN_ANSWER].similarity
    assert OWN_ANSWER in augmented.full_prompt


def test_planted_messages_of_teammate_outsider_or_other_org_never_reach_the_prompt(
    owner_client, openai_route, make_conversation, embed, owner, org, teammate, outsider
):
    current = make_conversation(messages=[("user", "Let's talk about the spring campaign.")])
    earlier = make_conversation(title="Earlier planning", messages=[("assistant", OWN_ANSWER)])
    teammates = make_conversation(user=teammate, messages=[("user", TEAMMATE_PLANT)])
    outsiders = make_conversation(user=outsider, organization=outsider.default_organization,
                                  messages=[("user", OUTSIDER_PLANT)])
    # The owner's own conversation, but in another organization the owner also belongs to.
    other_org = outsider.default_organization
    Membership.objects.create(organization=other_org, user=owner, role=Role.MEMBER)
    owners_elsewhere = make_conversation(organization=other_org, messages=[("user", OTHER_ORG_PLANT)])
    embed(*Message.objects.filter(conversation__in=[current, earlier, teammates, outsiders, owners_elsewhere]))

    response = owner_client.post(reply_url(current), {"content": QUERY}, format="json")

    assert response.status_code == 201
    prompt = sent_prompt(openai_route)
    # The owner's own earlier conversation in this organization is found...
    assert OWN_ANSWER in prompt
    assert "other conversation" in prompt
    # ...and nothing of anyone else, nor of the owner's other organization.
    for plant in ("TEAMMATE-PLANT", "OUTSIDER-PLANT", "OTHER-ORG-PLANT", "Kestrel", "Osprey", "Heron"):
        assert plant not in prompt
        assert plant not in response.content.decode()
    context_ids = {item["message_id"] for item in response.json()["context"]}
    own_ids = Message.objects.filter(owner=owner, organization=org).values_list("id", flat=True)
    assert context_ids <= {str(i) for i in own_ids}


def test_token_budget_is_respected_with_a_long_history(owner_client, openai_route, make_conversation, settings):
    settings.RAG_PROMPT_TOKEN_BUDGET = 900
    settings.CHAT_MAX_REPLY_TOKENS = 300
    history = [("user" if n % 2 == 0 else "assistant", f"Message {n:03d}: " + "campaign detail " * 25)
               for n in range(120)]
    history.append(("user", "HUGE " * 8000))  # 40,000 characters in one message
    conversation = make_conversation(messages=history)

    response = owner_client.post(reply_url(conversation), {"content": "Summarise the plan."}, format="json")

    assert response.status_code == 201
    body = request_json(openai_route)
    estimated = sum(estimate_message_tokens(m["content"]) for m in body["messages"])
    assert estimated <= 900
    # Room is left for the reply, and the provider is told how much.
    assert body["max_completion_tokens"] == 300
    context = response.json()["context"]
    assert 0 < len(context) < len(history)
    prompt = body["messages"][1]["content"]
    for item in context:
        assert f"relevance {item['score']:.2f}]" in prompt
    # The newest messages win; the oldest do not fit.
    assert "Message 119:" in prompt
    assert "Message 000:" not in prompt
    # One huge message is clipped instead of crowding out everything else.
    assert "HUGE HUGE" in prompt and prompt.count("HUGE") < 1000


def test_context_cache_is_reused_until_the_conversation_changes(make_conversation, owner, org):
    conversation = make_conversation(messages=[("user", "We launch in April.")])

    first, _ = run_seed_snippet("When?", conversation.id)
    again, _ = run_seed_snippet("When?", conversation.id)

    assert (first.from_cache, again.from_cache) == (False, True)
    assert [m.message_id for m in again.messages] == [m.message_id for m in first.messages]
    assert ContextCache.objects.filter(conversation=conversation).count() == 1

    message_create(conversation=conversation, role="assistant", content="April 14th, precisely.")
    changed, _ = run_seed_snippet("When?", conversation.id)

    assert changed.from_cache is False
    assert "April 14th, precisely." in [m.content for m in changed.messages]
    assert ContextCache.objects.filter(conversation=conversation).count() == 1
    cached = ContextCache.objects.get(conversation=conversation)
    assert (cached.organization_id, cached.owner_id) == (org.id, owner.id)


def test_embedding_provider_down_falls_back_to_recent_messages(owner_client, openai_route, make_conversation,
                                                               settings, respx_mock):
    settings.EMBEDDING_PROVIDER = "openai"
    settings.PROVIDER_MAX_RETRIES = 0
    respx_mock.post("https://api.openai.com/v1/embeddings").mock(return_value=httpx.Response(503, json={}))
    conversation = make_conversation(messages=[("user", "We launch in April.")])

    response = owner_client.post(reply_url(conversation), {"content": "When?"}, format="json")

    assert response.status_code == 201
    assert [item["snippet"] for item in response.json()["context"]] == ["We launch in April."]


# What retrieval reads today, cold (conversation, messages, embeddings, cache write) and from
# the cache: going through raptorflow.tenancy.scoped() must not add a query. One of each is
# the state of the caller's readable documents (rag.document_context), part of the cache's
# state so cached context never outlives a document change; with no readable document no
# chunk search runs.
COLD_RETRIEVAL_QUERIES, CACHED_RETRIEVAL_QUERIES = 16, 5


def test_retrieval_through_scoped_reads_costs_no_extra_query(make_conversation, owner, org, embed):
    conversation = make_conversation(messages=[("user", OWN_ANSWER), ("assistant", "Noted, Bluebird it is.")])
    embed(*Message.objects.filter(conversation=conversation))

    def queries(pipeline) -> int:
        with CaptureQueriesContext(connection) as captured:
            pipeline.retrieve_context_sync(QUERY, conversation.id)
        return len(captured)

    cold = queries(get_rag_pipeline(user=owner, organization=org))
    cached = queries(get_rag_pipeline(user=owner, organization=org))
    cached_for_the_owner = queries(get_rag_pipeline())

    assert cold <= COLD_RETRIEVAL_QUERIES
    assert cached <= CACHED_RETRIEVAL_QUERIES
    assert cached_for_the_owner <= CACHED_RETRIEVAL_QUERIES


def test_retrieval_refuses_a_conversation_not_visible_to_the_caller(make_conversation, teammate, org):
    conversation = make_conversation(messages=[("user", "private plan")])

    with pytest.raises(conversation.DoesNotExist):
        context_retrieve(user=teammate, organization=org, conversation=conversation, query="plan")
