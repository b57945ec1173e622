"""Cursor pagination of the three lists: bounds of page_size, following next and previous,
and a cursor that does not decode."""

import pytest
from django.utils import timezone

from conversations.models import Conversation
from tests.conversations.helpers import error_fields

LISTS = ["conversations", "messages", "search"]


@pytest.fixture
def list_url(make_conversation):
    """The URL and query of each list, with five items on it."""

    def url_for(kind):
        if kind == "messages":
            conversation = make_conversation(messages=5)
            return f"/api/conversations/{conversation.id}/messages", {}
        for number in range(5):
            make_conversation(title=f"Campaign {number}")
        if kind == "search":
            return "/api/conversations/search/by-title", {"q": "campaign"}
        return "/api/conversations", {}

    return url_for


def walk(client, url, params):
    """Every page of a list, following `next` links from the first one."""
    pages = [client.get(url, params)]
    while pages[-1].json()["next"]:
        pages.append(client.get(pages[-1].json()["next"]))
    return pages


@pytest.mark.parametrize("kind", LISTS)
@pytest.mark.parametrize("page_size", ["0", "101", "-5", "abc"])
def test_page_size_out_of_range_is_a_400_naming_it(owner_client, list_url, kind, page_size):
    url, params = list_url(kind)

    response = owner_client.get(url, {**params, "page_size": page_size})

    assert response.status_code == 400
    assert "page_size" in error_fields(response)


@pytest.mark.parametrize("kind", LISTS)
@pytest.mark.parametrize("page_size", [1, 100])
def test_page_size_at_the_bounds_is_accepted(owner_client, list_url, kind, page_size):
    url, params = list_url(kind)

    response = owner_client.get(url, {**params, "page_size": page_size})

    assert response.status_code == 200
    assert len(response.json()["results"]) == min(page_size, 5)


@pytest.mark.parametrize("kind", LISTS)
def test_invalid_cursor_is_a_400_naming_it(owner_client, list_url, kind):
    url, params = list_url(kind)

    response = owner_client.get(url, {**params, "cursor": "not-a-cursor"})

    assert response.status_code == 400
    assert "cursor" in error_fields(response)


@pytest.mark.parametrize("kind", LISTS)
def test_next_links_visit_every_item_once_and_previous_goes_back(owner_client, list_url, kind):
    url, params = list_url(kind)

    pages = walk(owner_client, url, {**params, "page_size": 2})

    assert [len(page.json()["results"]) for page in pages] == [2, 2, 1]
    ids = [item["id"] for page in pages for item in page.json()["results"]]
    assert len(ids) == len(set(ids)) == 5
    assert pages[0].json()["previous"] is None
    back = owner_client.get(pages[1].json()["previous"])
    assert [item["id"] for item in back.json()["results"]] == [item["id"] for item in pages[0].json()["results"]]


def test_messages_pages_run_in_sequence_order(owner_client, make_conversation):
    conversation = make_conversation(messages=5)

    pages = walk(owner_client, f"/api/conversations/{conversation.id}/messages", {"page_size": 2})

    assert [m["sequence"] for page in pages for m in page.json()["results"]] == [1, 2, 3, 4, 5]


def test_conversations_with_the_same_activity_time_are_each_listed_once(owner_client, make_conversation):
    created = [make_conversation(title=f"Same {n}") for n in range(5)]
    Conversation.objects.filter(pk__in=[c.pk for c in created]).update(activity_at=timezone.now())

    pages = walk(owner_client, "/api/conversations", {"page_size": 2})

    ids = [item["id"] for page in pages for item in page.json()["results"]]
    assert sorted(ids) == sorted(str(c.id) for c in created)


def test_page_size_defaults_to_twenty(owner_client, make_conversation):
    for number in range(21):
        make_conversation(title=f"c{number}")

    response = owner_client.get("/api/conversations")

    assert len(response.json()["results"]) == 20
    assert response.json()["next"] is not None
