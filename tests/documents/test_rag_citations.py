"""Replies drawing on the team's documents: a question answered from page 3 of a PDF cites that
document and page, the prompt numbers its sources and asks for [n] citations, the stored reply
keeps them; `document_ids` restricts the documents; a teammate's private document never
reaches a prompt."""

import httpx
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations.models import Message
from rag.pipeline import get_rag_pipeline
from tests.documents.conftest import LOREM_PAGES
from tests.documents.files import make_pdf
from tests.rag.conftest import (
    OPENAI_URL,
    openai_completion,
    openai_stream_chunks,
    parse_sse,
    request_json,
    sse_response,
)
from tests.rag.test_context import CACHED_RETRIEVAL_QUERIES, COLD_RETRIEVAL_QUERIES

pytestmark = pytest.mark.django_db

QUESTION = "What is the budget of the Aurora spring campaign?"


@pytest.fixture(autouse=True)
def _openai_chat(settings):
    settings.OPENAI_API_KEY = "sk-server-openai-0000"
    settings.GEMINI_API_KEY = ""
    settings.OPENROUTER_API_KEY = ""
    settings.CHAT_PROVIDERS = ["openai"]


@pytest.fixture
def chat(respx_mock):
    return respx_mock.post(OPENAI_URL).mock(
        return_value=httpx.Response(200, json=openai_completion("The Aurora budget is 42,000 euros [1]."))
    )


@pytest.fixture
def conversation_id(owner_client):
    response = owner_client.post("/api/conversations", {"title": "Aurora", "agent_type": "strategy"}, format="json")
    return response.json()["id"]


@pytest.fixture
def guide(owner_client, upload):
    return upload(owner_client, "guide.pdf", make_pdf(LOREM_PAGES), title="Brand guide",
                  visibility="organization").json()["id"]


def document_sources(context):
    return [item for item in context if item["kind"] == "document"]


def test_a_question_answered_from_page_3_cites_that_document_and_page(owner_client, chat, conversation_id, guide):
    response = owner_client.post(f"/api/conversations/{conversation_id}/reply", {"content": QUESTION}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    top = document_sources(body["context"])[0]
    assert (top["document_id"], top["title"], top["page"]) == (guide, "Brand guide", 3)
    assert "42,000 euros" in top["snippet"]
    assert top["message_id"] is None and top["source"] == "document"
    assert [item["number"] for item in body["context"]] == list(range(1, len(body["context"]) + 1))

    system, prompt = (m["content"] for m in request_json(chat)["messages"])
    assert "[1]" in system and "cite" in system
    assert f'[{top["number"]}] [document "Brand guide", page 3' in prompt
    assert "42,000 euros" in prompt

    stored = Message.objects.get(pk=body["message"]["id"])
    kept = [s for s in stored.generation["sources"] if s["kind"] == "document"]
    assert kept[0]["document_id"] == guide and kept[0]["page"] == 3 and kept[0]["number"] == top["number"]
    shown = body["message"]["generation"]["sources"]
    assert [s["number"] for s in shown] == [item["number"] for item in body["context"]]


def test_a_retry_with_the_same_key_answers_with_the_same_sources(owner_client, chat, conversation_id, guide):
    url = f"/api/conversations/{conversation_id}/reply"
    first = owner_client.post(url, {"content": QUESTION}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = owner_client.post(url, {"content": QUESTION}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert (first.status_code, again.status_code) == (201, 200)
    assert chat.call_count == 1
    assert again.json()["context"] == first.json()["context"]


def test_a_teammates_private_document_never_reaches_the_prompt(owner_client, teammate_client, upload, chat,
                                                               conversation_id):
    secret = upload(teammate_client, "nightjar.txt", b"Project Nightjar: the launch budget is 77,000 euros.")

    response = owner_client.post(
        f"/api/conversations/{conversation_id}/reply",
        {"content": "What is the launch budget of Project Nightjar?"},
        format="json",
    )

    assert response.status_code == 201
    assert secret.json()["id"] not in {item["document_id"] for item in response.json()["context"]}
    assert "77,000" not in request_json(chat)["messages"][1]["content"]


def test_document_ids_restrict_the_documents_drawn_on(owner_client, upload, chat, conversation_id, guide):
    other = upload(owner_client, "aurora-notes.txt", b"Aurora notes: the budget of the Aurora campaign was cut.")
    other_id = other.json()["id"]

    response = owner_client.post(
        f"/api/conversations/{conversation_id}/reply",
        {"content": QUESTION, "document_ids": [other_id]},
        format="json",
    )

    assert response.status_code == 201
    assert {item["document_id"] for item in document_sources(response.json()["context"])} == {other_id}
    assert "42,000" not in request_json(chat)["messages"][1]["content"]


def test_unreadable_document_ids_are_a_404_with_nothing_stored(owner_client, outsider_client, upload, chat,
                                                               conversation_id):
    foreign = upload(outsider_client, "theirs.txt", b"Someone else's plan.").json()["id"]

    response = owner_client.post(
        f"/api/conversations/{conversation_id}/reply", {"content": QUESTION, "document_ids": [foreign]}, format="json"
    )

    assert response.status_code == 404
    assert not Message.objects.filter(conversation_id=conversation_id).exists()
    assert chat.call_count == 0
    bad = owner_client.post(
        f"/api/conversations/{conversation_id}/reply", {"content": QUESTION, "document_ids": ["nope"]}, format="json"
    )
    assert bad.status_code == 400 and "document_ids" in bad.json()["error"]["fields"]


def test_retrieve_context_draws_on_readable_documents(owner, org, conversation_id, guide):
    pipeline = get_rag_pipeline(user=owner, organization=org)

    with CaptureQueriesContext(connection) as cold:
        context = pipeline.retrieve_context_sync(QUESTION, conversation_id)
    with CaptureQueriesContext(connection) as cached:
        again = pipeline.retrieve_context_sync(QUESTION, conversation_id)
    augmented = pipeline.augment_prompt_sync(QUESTION, context)

    assert context.chunks and context.chunks[0].page == 3
    assert again.from_cache and again.chunks == context.chunks
    # The documents cost two statements when cold: the readable documents' state (part of
    # the cache's key) and the chunk search (plan, both rankings and the chunks' rows in
    # one); two when cached: the state, and the cached chunks read again, scoped (rights
    # may have changed since).
    def on_documents(captured):
        return [q["sql"][:120] for q in captured.captured_queries if '"documents_' in q["sql"]]

    assert len(on_documents(cold)) == 2, on_documents(cold)
    assert len(on_documents(cached)) == 2, on_documents(cached)
    assert len(cold) <= COLD_RETRIEVAL_QUERIES and len(cached) <= CACHED_RETRIEVAL_QUERIES + 1
    assert augmented.chunks[0].number == 1
    assert "42,000 euros" in augmented.full_prompt



@pytest.mark.django_db(transaction=True)
def test_a_streamed_reply_cites_the_page_and_its_stored_message_keeps_the_document_source(
    owner_client, respx_mock, conversation_id, guide
):
    """A streamed reply is generated apart from its request (rag/reply_runner.py): the
    sources it hands over must still carry the document passages and their numbers."""
    body, _ = sse_response(openai_stream_chunks(["The Aurora budget ", "is 42,000 euros [1]."]))
    respx_mock.post(OPENAI_URL).mock(return_value=body)

    response = owner_client.post(
        f"/api/conversations/{conversation_id}/reply", {"content": QUESTION, "stream": True}, format="json"
    )

    assert response.status_code == 200
    events = dict(parse_sse(b"".join(response.streaming_content)))
    top = document_sources(events["context"]["context"])[0]
    assert (top["document_id"], top["page"]) == (guide, 3)
    done = events["done"]["message"]
    assert [s["number"] for s in done["generation"]["sources"]] == [
        item["number"] for item in events["context"]["context"]
    ]
    stored = Message.objects.get(pk=done["id"])
    kept = [s for s in stored.generation["sources"] if s["kind"] == "document"]
    assert kept[0]["document_id"] == guide and kept[0]["page"] == 3 and kept[0]["number"] == top["number"]
