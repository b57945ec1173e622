"""GET /api/conversations/search/by-title?q= and the trigram index behind it where the
server offers pg_trgm."""

import importlib

import pytest
from django.db import connection

from conversations.models import Conversation
from conversations.services import message_create
from tests.conversations.helpers import error_fields

URL = "/api/conversations/search/by-title"


def titles(response):
    return [c["title"] for c in response.json()["results"]]


def test_search_matches_a_substring_of_the_title_ignoring_case(owner_client, make_conversation):
    make_conversation(title="Q4 Marketing Strategy")
    make_conversation(title="Email campaign for MARKETING week")
    make_conversation(title="Hiring plan")

    response = owner_client.get(URL, {"q": "marKeting"})

    assert response.status_code == 200
    assert sorted(titles(response)) == ["Email campaign for MARKETING week", "Q4 Marketing Strategy"]


def test_search_results_are_newest_activity_first(owner_client, make_conversation):
    older = make_conversation(title="Launch A")
    newer = make_conversation(title="Launch B")
    message_create(conversation=older, role="user", content="bump")

    response = owner_client.get(URL, {"q": "launch"})

    assert [c["id"] for c in response.json()["results"]] == [str(older.id), str(newer.id)]


def test_search_answers_full_conversation_objects(owner_client, conversation):
    response = owner_client.get(URL, {"q": "q4"})

    (result,) = response.json()["results"]
    assert result["id"] == str(conversation.id)
    assert result["message_count"] == 2
    assert result["usage"]["total_tokens"] == 0


def test_search_treats_like_wildcards_literally(owner_client, make_conversation):
    make_conversation(title="Grow 100% in Q1")
    make_conversation(title="Grow 1000 users")
    make_conversation(title="snake_case names")
    make_conversation(title="snakeXcase")

    assert titles(owner_client.get(URL, {"q": "100%"})) == ["Grow 100% in Q1"]
    assert titles(owner_client.get(URL, {"q": "e_c"})) == ["snake_case names"]


def test_search_covers_only_the_callers_conversations(owner_client, make_conversation, teammate, outsider, org):
    mine = make_conversation(title="Budget review")
    make_conversation(user=teammate, organization=org, title="Budget review (Tom)")
    make_conversation(user=outsider, organization=outsider.default_organization, title="Budget review (Eve)")

    response = owner_client.get(URL, {"q": "budget"})

    assert [c["id"] for c in response.json()["results"]] == [str(mine.id)]


def test_search_without_match_is_an_empty_page(owner_client, conversation):
    response = owner_client.get(URL, {"q": "nothing like this"})

    assert response.status_code == 200
    assert response.json() == {"next": None, "previous": None, "results": []}


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}, {"q": "x" * 201}])
def test_search_needs_a_query_of_1_to_200_characters(owner_client, conversation, params):
    response = owner_client.get(URL, params)

    assert response.status_code == 400
    assert "q" in error_fields(response)


def test_search_is_not_mistaken_for_a_conversation_id(owner_client, conversation):
    response = owner_client.get(URL, {"q": "Q4"})

    assert response.status_code == 200
    assert Conversation.objects.count() == 1


def _trigram_index_exists() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'conv_title_upper_trgm'")
        return cursor.fetchone() is not None


def _pg_trgm_offered() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        return cursor.fetchone() is not None


def test_trigram_index_exists_exactly_where_the_server_offers_pg_trgm(db):
    assert _trigram_index_exists() == _pg_trgm_offered()


def test_trigram_migration_is_safe_to_run_again_and_to_reverse(db):
    migration = importlib.import_module("conversations.migrations.0002_title_trigram_index_where_available")
    offered = _pg_trgm_offered()

    with connection.schema_editor() as editor:
        migration.drop_trigram_index(None, editor)
    assert not _trigram_index_exists()

    with connection.schema_editor() as editor:
        migration.create_trigram_index(None, editor)
        migration.create_trigram_index(None, editor)
    assert _trigram_index_exists() == offered
