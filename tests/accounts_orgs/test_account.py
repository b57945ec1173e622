"""Leaving for good: the export of one's own conversations, the deletion of an account,
and that one organization's data never shows in another."""

import pytest
import requests
from django.utils import timezone

from accounts.models import Membership, Organization, Role, User
from billing.models import Subscription, SubscriptionStatus
from conversations.models import Conversation, Message
from raptorflow.models import AuditLog
from search.models import MessageEmbedding
from tests.accounts_orgs.conftest import bearer, make_conversation, personal_org, rows_pointing_at
from tests.billing_fixtures import cancel_url, subscription_entity
from tests.conftest import make_client

pytestmark = pytest.mark.django_db


def embed(message: Message) -> MessageEmbedding:
    return MessageEmbedding.objects.create(
        message=message,
        conversation=message.conversation,
        organization=message.organization,
        owner=message.owner,
        model="test-model",
        dimensions=3,
        embedding=[0.1, 0.2, 0.3],
        text_sha256="0" * 64,
    )


# --- export --------------------------------------------------------------------------------


def test_export_holds_exactly_my_conversations_of_the_current_organization(teammate, teammate_client, owner, org):
    mine = [
        make_conversation(org, teammate, title="Q3 plan", messages=3),
        make_conversation(org, teammate, title="Ads"),
    ]
    make_conversation(org, owner, title="Owner's private notes")
    make_conversation(personal_org(teammate), teammate, title="My side project")

    response = teammate_client.get("/api/auth/me/export")

    assert response.status_code == 200
    body = response.json()
    assert body["scope"] == "current_organization"
    assert body["user"]["id"] == str(teammate.id)
    assert body["organization"]["id"] == str(org.id)
    assert [c["id"] for c in body["conversations"]] == [str(c.id) for c in mine]
    first = body["conversations"][0]
    assert first["title"] == "Q3 plan"
    assert [(m["sequence"], m["content"]) for m in first["messages"]] == [
        (1, "Q3 plan message 1"),
        (2, "Q3 plan message 2"),
        (3, "Q3 plan message 3"),
    ]
    assert {m["conversation_id"] for m in first["messages"]} == {str(mine[0].id)}


def test_export_after_switching_holds_the_other_organizations_conversations(teammate, teammate_client):
    personal = personal_org(teammate)
    side = make_conversation(personal, teammate, title="My side project")
    switched = teammate_client.post(
        "/api/auth/switch-organization", {"organization_id": str(personal.id)}, format="json"
    )

    body = bearer(switched.json()["access"]).get("/api/auth/me/export").json()

    assert [c["id"] for c in body["conversations"]] == [str(side.id)]


def test_export_of_someone_without_conversations_is_empty(outsider_client):
    response = outsider_client.get("/api/auth/me/export")

    assert response.status_code == 200
    assert response.json()["conversations"] == []


def test_export_needs_a_token(anon_client):
    assert anon_client.get("/api/auth/me/export").status_code == 401


# --- one organization's data never shows in another ----------------------------------------


def test_after_switching_the_previous_organizations_conversations_are_out_of_reach(teammate, teammate_client, org):
    in_team = make_conversation(org, teammate, title="Team launch")
    assert teammate_client.get(f"/api/conversations/{in_team.id}").status_code == 200
    personal = personal_org(teammate)

    switched = teammate_client.post(
        "/api/auth/switch-organization", {"organization_id": str(personal.id)}, format="json"
    )
    client = bearer(switched.json()["access"])

    assert client.get(f"/api/conversations/{in_team.id}").status_code == 404
    assert client.get(f"/api/conversations/{in_team.id}/messages").status_code == 404
    assert client.get("/api/conversations").json()["results"] == []
    assert client.patch(f"/api/conversations/{in_team.id}", {"title": "x"}, format="json").status_code == 404
    assert Conversation.objects.get(id=in_team.id).title == "Team launch"


# --- deleting the account --------------------------------------------------------------------


def test_deleting_my_account_removes_me_my_personal_organization_and_my_data_everywhere(
    owner, org, teammate, teammate_client, anon_client, make_subscription, razorpay_keys, rzp
):
    personal = personal_org(teammate)
    make_subscription(organization=personal, sub_id="sub_TomPersonal01")
    make_subscription(organization=org, sub_id="sub_TheTeam00001")
    cancel = rzp.post(
        cancel_url("sub_TomPersonal01"), json=subscription_entity("sub_TomPersonal01", status="cancelled")
    )
    team_conversation = make_conversation(org, teammate, title="Mine in the team", messages=2)
    personal_conversation = make_conversation(personal, teammate, title="Mine alone", messages=2)
    for message in Message.objects.filter(owner=teammate):
        embed(message)
    owners_conversation = make_conversation(org, owner, title="Olivia's", messages=2)
    owners_vector = embed(owners_conversation.messages.first())
    teammate_id, personal_id = teammate.id, personal.id

    response = teammate_client.delete("/api/auth/me")

    assert response.status_code == 204
    assert not User.objects.filter(id=teammate_id).exists()
    assert not Organization.objects.filter(id=personal_id).exists()
    # Only the subscription of the organization deleted with the account was cancelled.
    assert cancel.call_count == 1
    assert len(rzp.calls) == 1
    assert Subscription.objects.filter(organization=org, status=SubscriptionStatus.ACTIVE).exists()
    # No row anywhere still points at the user or their personal organization.
    assert rows_pointing_at(User, teammate_id) == {}
    assert rows_pointing_at(Organization, personal_id) == {}
    for model in (Conversation, Message, MessageEmbedding):
        assert not model.objects.filter(owner_id=teammate_id).exists()
    assert not Conversation.objects.filter(id__in=[team_conversation.id, personal_conversation.id]).exists()
    # The team and everyone else's data stay.
    assert Organization.objects.filter(id=org.id).exists()
    assert Conversation.objects.filter(id=owners_conversation.id).exists()
    assert Message.objects.filter(conversation=owners_conversation).count() == 2
    assert MessageEmbedding.objects.filter(id=owners_vector.id).exists()
    # The audit trail outlives the account.
    entry = AuditLog.objects.get(action="account.delete")
    assert (entry.actor_id, entry.actor_email) == (teammate_id, "tom@acme.test")
    assert entry.details["deleted_organizations"] == [str(personal_id)]
    assert entry.details["left_organizations"] == [str(org.id)]
    assert AuditLog.objects.filter(action="organization.delete", organization_id=personal_id).exists()
    # Both of the account's tokens are dead.
    assert teammate_client.get("/api/auth/me").status_code == 401
    refreshed = anon_client.post("/api/auth/refresh", {"refresh": teammate_client.tokens["refresh"]}, format="json")
    assert refreshed.status_code == 401


def test_the_last_owner_of_a_shared_organization_must_hand_over_first(
    owner, owner_client, teammate, org, make_subscription, razorpay_keys, rzp
):
    make_conversation(org, owner)
    # A solo organization of theirs with a live subscription: refused before anything,
    # its subscription is not cancelled either.
    side = Organization.objects.create(name="Side project")
    Membership.objects.create(organization=side, user=owner, role=Role.OWNER)
    subscription = make_subscription(organization=side, sub_id="sub_SideProject1")

    response = owner_client.delete("/api/auth/me")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "last_owner"
    assert error["organizations"] == [{"id": str(org.id), "name": org.name}]
    assert User.objects.filter(id=owner.id).exists()
    assert Membership.objects.filter(user=owner, organization=org, role=Role.OWNER).exists()
    assert Conversation.objects.filter(owner=owner).count() == 1
    assert len(rzp.calls) == 0
    subscription.refresh_from_db()
    assert subscription.status == SubscriptionStatus.ACTIVE
    assert Organization.objects.filter(id=side.id).exists()
    assert not AuditLog.objects.filter(action="account.delete").exists()


def test_an_uncancellable_subscription_refuses_the_account_deletion_and_deletes_nothing(
    teammate, teammate_client, org, make_subscription, razorpay_keys, rzp
):
    personal = personal_org(teammate)
    subscription = make_subscription(organization=personal, sub_id="sub_TomPersonal01")
    make_conversation(personal, teammate, title="Mine alone")
    cancel = rzp.post(cancel_url("sub_TomPersonal01"), body=requests.exceptions.ConnectTimeout("no answer"))

    response = teammate_client.delete("/api/auth/me")

    assert response.status_code == 503
    assert cancel.call_count == 1
    assert User.objects.filter(id=teammate.id).exists()
    assert Organization.objects.filter(id=personal.id).exists()
    assert Membership.objects.filter(user=teammate, organization=org).exists()
    assert Conversation.objects.filter(owner=teammate, organization=personal).count() == 1
    subscription.refresh_from_db()
    assert subscription.status == SubscriptionStatus.ACTIVE
    assert not AuditLog.objects.filter(action__in=["account.delete", "organization.delete"]).exists()
    # Still signed in: nothing was revoked.
    assert teammate_client.get("/api/auth/me").status_code == 200


def test_after_handing_over_the_owner_may_delete_their_account(owner, owner_client, teammate, org):
    assert (
        owner_client.patch(
            f"/api/organizations/current/members/{teammate.id}", {"role": "owner"}, format="json"
        ).status_code
        == 200
    )
    make_conversation(org, owner, title="Olivia's")
    make_conversation(org, teammate, title="Tom's")
    owner_id = owner.id

    assert owner_client.delete("/api/auth/me").status_code == 204

    # The organization had another member: it stays, with its new owner and their data.
    assert Organization.objects.filter(id=org.id).exists()
    assert list(Membership.objects.filter(organization=org).values_list("user__email", "role")) == [
        ("tom@acme.test", "owner")
    ]
    assert list(Conversation.objects.filter(organization=org).values_list("title", flat=True)) == ["Tom's"]
    assert rows_pointing_at(User, owner_id) == {}


def test_a_sole_member_organization_goes_with_its_owner_even_when_not_personal(owner, owner_client):
    team = Organization.objects.create(name="Solo team")
    Membership.objects.create(organization=team, user=owner, role=Role.OWNER)
    make_conversation(team, owner)
    # `org` (the personal one) has nobody else either.
    team_id = team.id

    assert owner_client.delete("/api/auth/me").status_code == 204

    assert not Organization.objects.filter(id=team_id).exists()
    assert rows_pointing_at(Organization, team_id) == {}


def test_deleting_an_organization_leaves_no_rows_or_vectors_behind(owner, owner_client, teammate, org):
    conversations = [make_conversation(org, owner), make_conversation(org, teammate)]
    for conversation in conversations:
        for message in conversation.messages.all():
            embed(message)
    Membership.objects.filter(user=teammate, organization=org).update(created_at=timezone.now())
    owner_client.post("/api/organizations/current/invitations", {"email": "nina@acme.test"}, format="json")
    owner_client.post("/api/organizations/current/domains", {"domain": "acme.test"}, format="json")
    org_id = org.id

    assert owner_client.delete("/api/organizations/current").status_code == 204

    assert rows_pointing_at(Organization, org_id) == {}
    assert not MessageEmbedding.objects.filter(organization_id=org_id).exists()
    # Teammate's account and personal organization are untouched.
    assert User.objects.filter(id=teammate.id).exists()
    assert Organization.objects.filter(id=personal_org(teammate).id).exists()
    # The audit trail keeps the organization's history.
    assert AuditLog.objects.filter(organization_id=org_id, action="invitation.create").exists()
    assert AuditLog.objects.filter(organization_id=org_id, action="organization.delete").exists()


def test_account_deletion_needs_a_token(anon_client):
    assert anon_client.delete("/api/auth/me").status_code == 401


def test_a_deleted_users_token_is_refused(teammate, teammate_client, org):
    client = make_client(teammate, org)
    assert teammate_client.delete("/api/auth/me").status_code == 204

    assert client.get("/api/organizations").status_code == 401
