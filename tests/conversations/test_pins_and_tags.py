"""Pins and tags: set on create or with PATCH, validated with 400s naming the field, and
the list's filters ?pinned= and ?tag=, with pinned conversations first when asked."""

import pytest

from conversations.models import Conversation
from conversations.services import conversation_update, message_create
from tests.conversations.helpers import error_fields, snapshot


def listed_titles(client, **params) -> list[str]:
    response = client.get("/api/conversations", params)
    assert response.status_code == 200, response.json()
    return [c["title"] for c in response.json()["results"]]


def test_patch_pins_and_tags_a_conversation(owner_client, conversation):
    response = owner_client.patch(
        f"/api/conversations/{conversation.id}",
        {"pinned": True, "tags": ["  Email ", "Q4 Launch", "email", "Runners  Club"]},
        format="json",
    )

    assert response.status_code == 200, response.json()
    # Trimmed, spaces collapsed, lower case, repeats dropped, order kept.
    assert (response.json()["pinned"], response.json()["tags"]) == (True, ["email", "q4 launch", "runners club"])
    row = Conversation.objects.get(pk=conversation.pk)
    assert (row.pinned, row.tags) == (True, ["email", "q4 launch", "runners club"])

    response = owner_client.patch(f"/api/conversations/{conversation.id}", {"pinned": False, "tags": []}, format="json")
    assert (response.json()["pinned"], response.json()["tags"]) == (False, [])


def test_pins_and_tags_can_be_set_on_create(owner_client):
    response = owner_client.post(
        "/api/conversations", {"title": "T", "agent_type": "strategy", "pinned": True, "tags": ["SEO"]}, format="json"
    )

    assert response.status_code == 201
    row = Conversation.objects.get(pk=response.json()["id"])
    assert (row.pinned, row.tags) == (True, ["seo"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tags": "email"}, "tags"),
        ({"tags": ["x" * 33]}, "tags"),
        ({"tags": ["ok", "   "]}, "tags"),
        ({"tags": [7]}, "tags"),
        ({"tags": [None]}, "tags"),
        ({"tags": ["bad\x00tag"]}, "tags"),
        ({"tags": [f"tag {n}" for n in range(21)]}, "tags"),
        ({"tags": None}, "tags"),
        ({"pinned": "maybe"}, "pinned"),
        ({"pinned": None}, "pinned"),
    ],
)
def test_bad_pins_and_tags_are_400s_naming_the_field(owner_client, conversation, body, field):
    before = snapshot(conversation)

    response = owner_client.patch(f"/api/conversations/{conversation.id}", body, format="json")

    assert response.status_code == 400
    assert field in error_fields(response)
    assert snapshot(conversation) == before


def test_twenty_tags_of_32_characters_are_accepted(owner_client, conversation):
    tags = [f"{n:02d}" + "x" * 30 for n in range(20)]

    response = owner_client.patch(f"/api/conversations/{conversation.id}", {"tags": tags}, format="json")

    assert response.status_code == 200
    assert Conversation.objects.get(pk=conversation.pk).tags == tags


def test_others_cannot_pin_or_tag_a_conversation(teammate_client, outsider_client, conversation):
    before = snapshot(conversation)

    for client in (teammate_client, outsider_client):
        response = client.patch(f"/api/conversations/{conversation.id}", {"pinned": True, "tags": ["x"]}, format="json")
        assert response.status_code == 404

    assert snapshot(conversation) == before


@pytest.fixture
def library(make_conversation):
    """Five conversations, newest activity last: two pinned, tags on three."""
    made = {}
    for title, pinned, tags in [
        ("oldest pinned", True, ["email"]),
        ("old", False, ["email", "seo"]),
        ("middle", False, []),
        ("newer pinned", True, []),
        ("newest", False, ["seo"]),
    ]:
        conversation = make_conversation(title=title)
        conversation_update(conversation=conversation, pinned=pinned, tags=tags)
        # A message moves the conversation's activity forward: creation order is activity order.
        message_create(conversation=conversation, role="user", content=title)
        made[title] = conversation
    return made


def test_the_list_filters_by_pinned_and_tag(owner_client, library, make_conversation, teammate, org):
    other = make_conversation(user=teammate, organization=org, title="teammate's pinned")
    conversation_update(conversation=other, pinned=True, tags=["email"])

    assert listed_titles(owner_client, pinned="true") == ["newer pinned", "oldest pinned"]
    assert listed_titles(owner_client, pinned="false") == ["newest", "middle", "old"]
    assert listed_titles(owner_client, tag="email") == ["old", "oldest pinned"]
    # Compared in lower case, as tags are stored.
    assert listed_titles(owner_client, tag=" SEO ") == ["newest", "old"]
    assert listed_titles(owner_client, tag="seo", pinned="false") == ["newest", "old"]
    assert listed_titles(owner_client, tag="nothing") == []
    # A value no tag can be (control characters) matches nothing.
    assert listed_titles(owner_client, tag="bad\x01") == []
    assert listed_titles(owner_client, tag="s\x8feo") == []


def test_pinned_first_orders_pinned_conversations_ahead_across_pages(owner_client, library):
    assert listed_titles(owner_client) == ["newest", "newer pinned", "middle", "old", "oldest pinned"]

    titles, url = [], "/api/conversations?pinned_first=true&page_size=2"
    while url:
        page = owner_client.get(url).json()
        titles += [c["title"] for c in page["results"]]
        url = page["next"]

    assert titles == ["newer pinned", "oldest pinned", "newest", "middle", "old"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pinned": "yes"}, "pinned"),
        ({"pinned": ""}, None),
        ({"pinned_first": "1"}, "pinned_first"),
        ({"tag": "x" * 33}, "tag"),
        # NUL is refused by every text field (as the schema's pattern says).
        ({"tag": "seo\x00"}, "tag"),
        ({"tags": "email"}, "tags"),
    ],
)
def test_bad_list_filters_are_400s_naming_the_parameter(owner_client, library, params, field):
    response = owner_client.get("/api/conversations", params)

    if field is None:
        # An empty value is no filter, as for status and agent_type.
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert field in error_fields(response)
