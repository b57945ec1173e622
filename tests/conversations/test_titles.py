"""Titles: optional on create; an untitled conversation is titled after its first reply by
a short background call to the chat provider (mocked at its HTTP boundary, through the real
OpenAI SDK), or from the first user message without one; a user's title is never
overwritten, not even by a title job that was already running when the user renamed."""

import json

import httpx
import pytest

from billing.models import Usage
from conversations.models import Conversation
from conversations.titles import TITLE_MAX_CHARS, title_from_text
from rag.titles import TITLE_MAX_TOKENS
from raptorflow import hooks
from tests.conversations.helpers import error_fields
from tests.rag.conftest import OPENAI_URL, openai_completion, reply_url


@pytest.fixture(autouse=True)
def _chat_settings(settings, monkeypatch):
    """Background jobs run when their transaction commits (the tests capture the commit);
    no provider key unless a test sets one. Embedding the messages is not what these
    tests are about: search's receiver is left out."""
    settings.BACKGROUND_JOBS_EAGER = True
    settings.CELERY_BROKER_URL = ""
    monkeypatch.setattr(hooks.message_stored, "_receivers", [])
    settings.OPENAI_API_KEY = ""
    settings.GEMINI_API_KEY = ""
    settings.OPENROUTER_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    settings.CHAT_PROVIDERS = ["openai", "gemini", "openrouter"]
    settings.OPENAI_CHAT_MODEL = "gpt-4o-mini"
    settings.PROVIDER_TIMEOUT_SECONDS = 7.0
    return settings


@pytest.fixture
def openai_key(settings):
    settings.OPENAI_API_KEY = "sk-server-openai-0000"


def completion(text, *, prompt_tokens=42, completion_tokens=7):
    return httpx.Response(
        200, json=openai_completion(text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    )


def create_untitled(client) -> Conversation:
    response = client.post("/api/conversations", {"agent_type": "strategy"}, format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["title"], response.json()["title_source"]) == ("", None)
    return Conversation.objects.get(pk=response.json()["id"])


def title_of(conversation) -> tuple[str, str | None]:
    return tuple(Conversation.objects.values_list("title", "title_source").get(pk=conversation.pk))


def reply_tokens(org) -> int:
    return Usage.objects.get(organization=org).reply_tokens


def test_untitled_conversation_is_titled_by_the_provider_after_its_first_reply(
    owner_client, org, openai_key, respx_mock, django_capture_on_commit_callbacks
):
    conversation = create_untitled(owner_client)
    route = respx_mock.post(OPENAI_URL).mock(
        side_effect=[
            completion("Sponsor a local 10k and the running clubs.", prompt_tokens=42, completion_tokens=7),
            completion('"Vegan Protein Bar Launch for Runners."', prompt_tokens=30, completion_tokens=6),
        ]
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reply_url(conversation), {"content": "How do we launch our vegan protein bar to runners?"}, format="json"
        )

    assert response.status_code == 201, response.json()
    assert route.call_count == 2
    title_request = json.loads(route.calls[1].request.content)
    assert title_request["max_completion_tokens"] == TITLE_MAX_TOKENS
    assert "title" in title_request["messages"][0]["content"].lower()
    assert "How do we launch our vegan protein bar" in title_request["messages"][1]["content"]
    assert "Sponsor a local 10k" in title_request["messages"][1]["content"]
    # Quotes and the final period taken off; shown by the API with its source.
    assert title_of(conversation) == ("Vegan Protein Bar Launch for Runners", "generated")
    body = owner_client.get(f"/api/conversations/{conversation.id}").json()
    assert (body["title"], body["title_source"]) == ("Vegan Protein Bar Launch for Runners", "generated")
    # The title's tokens count against the reply-token quota, as the reply's do.
    assert reply_tokens(org) == (42 + 7) + (30 + 6)


def test_without_a_provider_the_title_comes_from_the_first_user_message(
    owner_client, django_capture_on_commit_callbacks
):
    conversation = create_untitled(owner_client)
    question = (
        "Can you draft a three-week Instagram campaign for our vegan protein bar aimed at marathon runners in Pune?"
    )
    url = f"/api/conversations/{conversation.id}/messages"

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(url, {"role": "user", "content": question}, format="json")
    # No answer yet: still untitled.
    assert title_of(conversation) == ("", None)

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(url, {"role": "assistant", "content": "Week one: teasers."}, format="json")

    title, source = title_of(conversation)
    assert source == "generated"
    assert len(title) <= TITLE_MAX_CHARS
    # Cut at a word boundary, with an ellipsis.
    assert title == "Can you draft a three-week Instagram campaign for our…"
    assert question.startswith(title[:-1] + " ")


def test_a_failing_provider_falls_back_to_the_first_user_message(
    owner_client, org, openai_key, respx_mock, django_capture_on_commit_callbacks
):
    conversation = create_untitled(owner_client)
    respx_mock.post(OPENAI_URL).mock(
        side_effect=[
            completion("Use Strava challenges."),
            httpx.Response(400, json={"error": {"message": "bad request", "type": "invalid_request_error"}}),
        ]
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reply_url(conversation), {"content": "Ideas for runners?"}, format="json")

    assert response.status_code == 201
    assert title_of(conversation) == ("Ideas for runners?", "generated")
    # The failed title call held tokens only while it ran: just the reply's are counted.
    assert reply_tokens(org) == 42 + 7


def test_a_title_given_on_create_is_never_replaced(
    owner_client, openai_key, respx_mock, django_capture_on_commit_callbacks
):
    response = owner_client.post("/api/conversations", {"title": "Q4 launch", "agent_type": "strategy"}, format="json")
    assert response.json()["title_source"] == "user"
    conversation = Conversation.objects.get(pk=response.json()["id"])
    route = respx_mock.post(OPENAI_URL).mock(side_effect=[completion("Sponsor a 10k.")])

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reply_url(conversation), {"content": "Ideas?"}, format="json")

    # One call, the reply's: no title was asked for.
    assert route.call_count == 1
    assert title_of(conversation) == ("Q4 launch", "user")


def test_a_rename_while_the_title_job_runs_wins(
    owner_client, openai_key, respx_mock, django_capture_on_commit_callbacks
):
    conversation = create_untitled(owner_client)
    renamed = []

    def title_call(request):
        # The user renames the conversation while the provider is still writing its title.
        response = owner_client.patch(f"/api/conversations/{conversation.id}", {"title": "My own name"}, format="json")
        renamed.append(response.status_code)
        return completion("Generated Name")

    respx_mock.post(OPENAI_URL).mock(side_effect=[completion("Sponsor a 10k."), title_call])

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reply_url(conversation), {"content": "Ideas?"}, format="json")

    assert renamed == [200]
    assert title_of(conversation) == ("My own name", "user")


def test_renaming_a_generated_title_makes_it_the_users(owner_client, django_capture_on_commit_callbacks):
    conversation = create_untitled(owner_client)
    url = f"/api/conversations/{conversation.id}/messages"
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(url, {"role": "user", "content": "Launch ideas"}, format="json")
        owner_client.post(url, {"role": "assistant", "content": "Here are some."}, format="json")
    assert title_of(conversation) == ("Launch ideas", "generated")

    response = owner_client.patch(f"/api/conversations/{conversation.id}", {"title": "Launch"}, format="json")

    assert response.json()["title_source"] == "user"
    assert title_of(conversation) == ("Launch", "user")
    # A later answer asks for no new title.
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(url, {"role": "assistant", "content": "And more."}, format="json")
    assert title_of(conversation) == ("Launch", "user")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "", "agent_type": "strategy"}, "title"),
        ({"title": None, "agent_type": "strategy"}, "title"),
        ({"title": 7, "agent_type": "strategy"}, "title"),
        ({"title": "T", "agent_type": "strategy", "title_source": "generated"}, "title_source"),
    ],
)
def test_bad_titles_on_create_are_400s_naming_the_field(owner_client, body, field):
    response = owner_client.post("/api/conversations", body, format="json")

    assert response.status_code == 400
    assert field in error_fields(response)
    assert not Conversation.objects.exists()


def test_title_source_cannot_be_patched(owner_client, conversation):
    response = owner_client.patch(f"/api/conversations/{conversation.id}", {"title_source": None}, format="json")

    assert response.status_code == 400
    assert "title_source" in error_fields(response)
    assert title_of(conversation) == ("Q4 Marketing Strategy", "user")


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("Title: Q4 Launch Plan.", "Q4 Launch Plan"),
        ("  \n\n“Runner outreach”\nsecond line", "Runner outreach"),
        ("", "New conversation"),
        ("x" * 200, "x" * (TITLE_MAX_CHARS - 1) + "…"),
    ],
)
def test_titles_are_one_short_clean_line(text, title):
    assert title_from_text(text) == title
    assert len(title_from_text(text)) <= TITLE_MAX_CHARS
