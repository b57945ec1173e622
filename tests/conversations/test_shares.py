"""Share links: POST/GET /api/conversations/{id}/shares, DELETE …/shares/{share_id} and
GET /api/shares/{token}, for each scope against the owner, a teammate, an outsider and
nobody signed in; revoked, expired and ended shares; the snapshot frozen when it was made."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Membership
from conversations.models import ConversationShare
from conversations.services import message_create
from raptorflow.logs import redact_path, scrub
from raptorflow.models import AuditLog
from tests.conftest import make_client
from tests.conversations.helpers import error_fields

SNAPSHOT_FIELDS = {"title", "scope", "shared_at", "expires_at", "messages"}


def shares_url(conversation) -> str:
    return f"/api/conversations/{conversation.id}/shares"


def share_url(token: str) -> str:
    return f"/api/shares/{token}"


def create_share(client, conversation, **body):
    response = client.post(shares_url(conversation), {"scope": "organization", **body}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def allow_public_links(client, allowed=True):
    response = client.patch("/api/organizations/current", {"settings": {"public_share_links": allowed}}, format="json")
    assert response.status_code == 200, response.json()


@pytest.fixture
def shared(make_conversation):
    """A conversation with a question, an answer (with server-owned generation data) and
    client metadata that a snapshot must leave out."""
    conversation = make_conversation(title="Q4 launch", metadata={"secret_note": "internal"})
    message_create(conversation=conversation, role="user", content="Which event should we sponsor?", metadata={"k": 1})
    message_create(
        conversation=conversation,
        role="assistant",
        content="Sponsor a local 10k.",
        generation={
            "provider": "openai",
            "model": "gpt-4o-mini",
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2, "estimated": False},
            "response_time_ms": 3,
            "sources": [],
            "status": "complete",
        },
    )
    return conversation


def test_owner_creates_an_organization_link_whose_token_is_stored_hashed(owner_client, shared):
    body = create_share(owner_client, shared)

    token = body["token"]
    assert len(token) >= 43
    assert body["url"].endswith(f"/api/shares/{token}")
    assert (body["scope"], body["status"], body["title"], body["message_count"]) == (
        "organization",
        "active",
        "Q4 launch",
        2,
    )
    assert (body["view_count"], body["expires_at"], body["revoked_at"]) == (0, None, None)
    row = ConversationShare.objects.get(pk=body["id"])
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(ConversationShare.objects.filter(pk=row.pk).values().first())
    entry = AuditLog.objects.get(action="conversation.share_created")
    assert (entry.target_id, entry.details["scope"]) == (str(row.pk), "organization")


def test_an_organization_link_opens_for_members_only(
    owner_client, teammate_client, outsider_client, anon_client, shared
):
    token = create_share(owner_client, shared)["token"]

    for client in (owner_client, teammate_client):
        response = client.get(share_url(token))
        assert response.status_code == 200, response.json()
        assert response.json()["title"] == "Q4 launch"
    for client in (outsider_client, anon_client):
        response = client.get(share_url(token))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

    assert ConversationShare.objects.get().view_count == 2


def test_a_teammate_opens_it_with_a_token_of_another_of_their_organizations(owner_client, teammate, shared):
    token = create_share(owner_client, shared)["token"]
    # Signed in to the teammate's personal organization, still a member of the owner's.
    personal = Membership.objects.exclude(organization=shared.organization).get(user=teammate).organization

    assert make_client(teammate, personal).get(share_url(token)).status_code == 200


def test_the_snapshot_holds_titles_roles_contents_and_times_only(owner_client, teammate_client, shared):
    token = create_share(owner_client, shared)["token"]

    body = teammate_client.get(share_url(token)).json()

    assert set(body) == SNAPSHOT_FIELDS
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("user", "Which event should we sponsor?"),
        ("assistant", "Sponsor a local 10k."),
    ]
    assert all(set(m) == {"role", "content", "created_at"} for m in body["messages"])
    for leaked in ("secret_note", "gpt-4o-mini", "usage", "metadata", "generation", str(shared.id)):
        assert leaked not in str(body)


def test_the_snapshot_is_unchanged_after_the_conversation_moves_on(owner_client, teammate_client, shared):
    token = create_share(owner_client, shared)["token"]
    before = teammate_client.get(share_url(token)).json()

    message_create(conversation=shared, role="user", content="And the budget?")
    owner_client.patch(f"/api/conversations/{shared.id}", {"title": "Renamed"}, format="json")

    after = teammate_client.get(share_url(token)).json()
    assert after == before
    assert len(after["messages"]) == 2 and after["title"] == "Q4 launch"


def test_public_links_are_refused_while_the_organization_does_not_allow_them(owner_client, shared):
    response = owner_client.post(shares_url(shared), {"scope": "public"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "public_links_disabled"
    assert not ConversationShare.objects.exists()


def test_a_public_link_opens_for_anyone_while_the_organization_allows_it(
    owner_client, teammate_client, outsider_client, anon_client, shared
):
    allow_public_links(owner_client)
    token = create_share(owner_client, shared, scope="public")["token"]

    for client in (owner_client, teammate_client, outsider_client, anon_client):
        assert client.get(share_url(token)).status_code == 200
    assert ConversationShare.objects.get().view_count == 4

    # Turned off again: every public link of the organization stops at once.
    allow_public_links(owner_client, False)
    for client in (owner_client, anon_client):
        assert client.get(share_url(token)).status_code == 404


def test_a_revoked_link_is_a_404(owner_client, teammate_client, shared):
    created = create_share(owner_client, shared)

    response = owner_client.delete(f"{shares_url(shared)}/{created['id']}")

    assert response.status_code == 204
    assert teammate_client.get(share_url(created["token"])).status_code == 404
    assert owner_client.get(share_url(created["token"])).status_code == 404
    listed = owner_client.get(shares_url(shared)).json()["results"]
    assert [(s["id"], s["status"]) for s in listed] == [(created["id"], "revoked")]
    assert AuditLog.objects.filter(action="conversation.share_revoked", target_id=created["id"]).count() == 1
    # Revoking again changes nothing and is audited once.
    assert owner_client.delete(f"{shares_url(shared)}/{created['id']}").status_code == 204
    assert AuditLog.objects.filter(action="conversation.share_revoked").count() == 1


def test_an_expired_link_is_a_404(owner_client, teammate_client, shared):
    expires_at = timezone.now() + timedelta(hours=1)
    created = create_share(owner_client, shared, expires_at=expires_at.isoformat())
    assert teammate_client.get(share_url(created["token"])).status_code == 200

    # An hour later.
    ConversationShare.objects.filter(pk=created["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert teammate_client.get(share_url(created["token"])).status_code == 404
    assert owner_client.get(shares_url(shared)).json()["results"][0]["status"] == "expired"


def test_links_end_with_their_conversation(owner_client, teammate_client, shared):
    token = create_share(owner_client, shared)["token"]

    assert owner_client.delete(f"/api/conversations/{shared.id}").status_code == 204

    assert teammate_client.get(share_url(token)).status_code == 404
    assert not ConversationShare.objects.exists()


def test_links_end_with_their_owners_membership_and_account(
    owner_client, teammate, teammate_client, org, make_conversation
):
    conversation = make_conversation(user=teammate, organization=org, title="Tom's plan", messages=2)
    token = create_share(teammate_client, conversation)["token"]
    assert owner_client.get(share_url(token)).status_code == 200

    # The owner of the organization removes the teammate; the conversation stays, the link ends.
    assert owner_client.delete(f"/api/organizations/current/members/{teammate.id}").status_code == 204
    assert owner_client.get(share_url(token)).status_code == 404
    # Joining again does not bring it back.
    Membership.objects.create(organization=org, user=teammate, role="member")
    assert owner_client.get(share_url(token)).status_code == 404


def test_links_end_when_their_owner_is_deactivated(owner, teammate_client, shared):
    token = create_share(make_client(owner), shared)["token"]
    owner.is_active = False
    owner.save(update_fields=["is_active"])

    assert teammate_client.get(share_url(token)).status_code == 404


def test_only_the_owner_lists_creates_and_revokes_a_conversations_links(
    owner_client, teammate_client, outsider_client, anon_client, shared
):
    created = create_share(owner_client, shared)

    for client in (teammate_client, outsider_client):
        assert client.get(shares_url(shared)).status_code == 404
        assert client.post(shares_url(shared), {"scope": "organization"}, format="json").status_code == 404
        assert client.delete(f"{shares_url(shared)}/{created['id']}").status_code == 404
    assert anon_client.post(shares_url(shared), {"scope": "organization"}, format="json").status_code == 401

    assert ConversationShare.objects.count() == 1
    assert ConversationShare.objects.get().revoked_at is None


def test_the_list_never_shows_tokens(owner_client, shared):
    first = create_share(owner_client, shared)
    second = create_share(owner_client, shared)

    listed = owner_client.get(shares_url(shared)).json()["results"]

    assert [s["id"] for s in listed] == [second["id"], first["id"]]
    assert all("token" not in s for s in listed)
    assert first["token"] not in str(listed)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "scope"),
        ({"scope": "everyone"}, "scope"),
        ({"scope": None}, "scope"),
        ({"scope": "organization", "expires_at": "tomorrow"}, "expires_at"),
        ({"scope": "organization", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"scope": "organization", "token": "mine"}, "token"),
    ],
)
def test_bad_share_requests_are_400s_naming_the_field(owner_client, shared, body, field):
    response = owner_client.post(shares_url(shared), body, format="json")

    assert response.status_code == 400
    assert field in error_fields(response)
    assert not ConversationShare.objects.exists()


@pytest.mark.parametrize("token", ["nope", "x" * 43, "x" * 500, "%C3%A9t%C3%A9"])
def test_unknown_tokens_are_404s(anon_client, db, token):
    response = anon_client.get(share_url(token))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_link_reads_are_rate_limited_per_ip(settings, owner_client, anon_client, shared):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "share_ip": "2/min"}
    allow_public_links(owner_client)
    token = create_share(owner_client, shared, scope="public")["token"]

    statuses = [anon_client.get(share_url(token)).status_code for _ in range(3)]
    guessed = anon_client.get(share_url("x" * 43))

    assert statuses == [200, 200, 429]
    assert guessed.status_code == 429 and int(guessed["Retry-After"]) > 0
    assert ConversationShare.objects.get().view_count == 2


def test_link_tokens_are_redacted_from_logged_paths():
    token = "s3cr3t-token-value"

    assert redact_path(f"GET /api/shares/{token} HTTP/1.1") == "GET /api/shares/[redacted] HTTP/1.1"
    assert token not in scrub(f"Not Found: /api/shares/{token}")
