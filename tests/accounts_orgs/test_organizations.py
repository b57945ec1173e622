import json
import uuid

import pytest
import requests
import responses

from accounts.models import Membership, Organization, Role
from billing.models import SubscriptionStatus
from raptorflow.models import AuditLog
from tests.accounts_orgs.conftest import bearer, join, new_user, personal_org
from tests.billing_fixtures import cancel_url, subscription_entity
from tests.conftest import make_client

pytestmark = pytest.mark.django_db


def test_list_shows_every_organization_i_belong_to_with_my_role(teammate, teammate_client, org, outsider):
    response = teammate_client.get("/api/organizations")

    assert response.status_code == 200
    body = response.json()
    roles = {item["id"]: item["role"] for item in body["results"]}
    personal = personal_org(teammate)
    assert roles == {str(personal.id): "owner", str(org.id): "member"}
    assert str(outsider.default_organization_id) not in roles
    assert body["next"] is None


def test_list_is_paginated_oldest_membership_first(owner, owner_client):
    for index in range(3):
        join(owner, Organization.objects.create(name=f"Team {index}"), Role.MEMBER)

    first = owner_client.get("/api/organizations", {"page_size": 2})
    second = owner_client.get(first.json()["next"])

    assert first.status_code == second.status_code == 200
    names = [item["name"] for item in first.json()["results"] + second.json()["results"]]
    assert names == ["Olivia Owner's workspace", "Team 0", "Team 1", "Team 2"]


def test_create_makes_the_caller_owner_of_a_new_team_organization(owner, owner_client, org):
    response = owner_client.post("/api/organizations", {"name": "  Growth team "}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Growth team"
    assert body["role"] == "owner"
    assert body["is_personal"] is False
    created = Organization.objects.get(id=body["id"])
    assert Membership.objects.get(organization=created).user == owner
    assert Membership.objects.get(organization=created).role == Role.OWNER
    assert AuditLog.objects.get(action="organization.create").organization_id == created.id
    # Creating does not switch: the token still acts in the previous organization.
    assert owner_client.get("/api/organizations/current").json()["id"] == str(org.id)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": ""}, "name"),
        ({}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "A", "is_personal": True}, "is_personal"),
    ],
)
def test_create_refuses_invalid_input_and_creates_nothing(owner_client, payload, field):
    before = Organization.objects.count()

    response = owner_client.post("/api/organizations", payload, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert Organization.objects.count() == before


def test_current_is_the_token_organization_with_my_role(teammate_client, org):
    response = teammate_client.get("/api/organizations/current")

    assert response.status_code == 200
    assert response.json()["id"] == str(org.id)
    assert response.json()["role"] == "member"


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_owner_and_admin_rename_and_replace_settings(request, org, who):
    client = make_client(request.getfixturevalue(who), org)
    org.settings = {"old": True}
    org.save()

    response = client.patch(
        "/api/organizations/current", {"name": "Acme Marketing", "settings": {"tone": "friendly"}}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["name"] == "Acme Marketing"
    assert response.json()["settings"] == {"tone": "friendly"}
    org.refresh_from_db()
    assert (org.name, org.settings) == ("Acme Marketing", {"tone": "friendly"})
    assert AuditLog.objects.filter(action="organization.update", organization_id=org.id).exists()


def test_patch_changes_only_the_fields_sent(owner_client, org):
    org.settings = {"tone": "formal"}
    org.save()

    response = owner_client.patch("/api/organizations/current", {"name": "Renamed"}, format="json")

    assert response.status_code == 200
    org.refresh_from_db()
    assert org.settings == {"tone": "formal"}


def test_member_cannot_patch_the_organization(teammate_client, org):
    response = teammate_client.patch("/api/organizations/current", {"name": "Mine now"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    org.refresh_from_db()
    assert org.name == "Olivia Owner's workspace"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"is_personal": False}, "is_personal"),
        ({"id": str(uuid.uuid4())}, "id"),
        ({"settings": ["not", "an", "object"]}, "settings"),
        ({"settings": {"blob": "x" * 17000}}, "settings"),
        ({"name": ""}, "name"),
    ],
)
def test_patch_refuses_read_only_unknown_or_invalid_fields(owner_client, org, payload, field):
    response = owner_client.patch("/api/organizations/current", payload, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    org.refresh_from_db()
    assert org.name == "Olivia Owner's workspace"
    assert org.settings == {}


def test_switch_returns_tokens_for_the_other_organization_and_makes_it_the_default(teammate, teammate_client, org):
    personal = personal_org(teammate)

    response = teammate_client.post(
        "/api/auth/switch-organization", {"organization_id": str(personal.id)}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["organization"]["id"] == str(personal.id)
    assert body["role"] == "owner"
    assert body["token_type"] == "Bearer"
    assert body["user"]["id"] == str(teammate.id)
    teammate.refresh_from_db()
    assert teammate.default_organization == personal
    current = bearer(body["access"]).get("/api/organizations/current")
    assert current.json()["id"] == str(personal.id)
    # The earlier token still names the earlier organization.
    assert teammate_client.get("/api/organizations/current").json()["id"] == str(org.id)


def test_switching_to_a_foreign_organization_is_a_404_and_changes_nothing(teammate, teammate_client, outsider, org):
    response = teammate_client.post(
        "/api/auth/switch-organization", {"organization_id": str(outsider.default_organization_id)}, format="json"
    )

    assert response.status_code == 404
    teammate.refresh_from_db()
    assert teammate.default_organization == org


def test_switching_to_an_unknown_organization_is_a_404(teammate_client):
    response = teammate_client.post(
        "/api/auth/switch-organization", {"organization_id": str(uuid.uuid4())}, format="json"
    )
    assert response.status_code == 404


def test_switch_refuses_a_malformed_organization_id(teammate_client):
    response = teammate_client.post("/api/auth/switch-organization", {"organization_id": "acme"}, format="json")
    assert response.status_code == 400
    assert "organization_id" in response.json()["error"]["fields"]


def test_switch_needs_a_token(anon_client, org):
    response = anon_client.post("/api/auth/switch-organization", {"organization_id": str(org.id)}, format="json")
    assert response.status_code == 401


def test_owner_deletes_the_organization_after_cancelling_its_subscription(
    owner, owner_client, teammate, teammate_client, org, make_subscription, razorpay_keys, rzp
):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)
    cancelled = []

    def cancel(request):
        cancelled.append((json.loads(request.body), Organization.objects.filter(pk=org.pk).exists()))
        return 200, {}, json.dumps(subscription_entity(subscription.razorpay_subscription_id, status="cancelled"))

    rzp.add_callback(responses.POST, cancel_url(subscription.razorpay_subscription_id), callback=cancel)
    org_id = org.id

    response = owner_client.delete("/api/organizations/current")

    assert response.status_code == 204
    # Cancelled at once (not at the cycle end) first, while the organization still existed.
    assert cancelled == [({"cancel_at_cycle_end": 0}, True)]
    assert AuditLog.objects.get(action="billing.cancel").details["reason"] == "organization_deleted"
    assert not Organization.objects.filter(id=org_id).exists()
    assert not Membership.objects.filter(organization_id=org_id).exists()
    entry = AuditLog.objects.get(action="organization.delete")
    assert entry.organization_id == org_id
    assert entry.actor_id == owner.id
    # Whoever had it as default falls back to an organization they still belong to.
    teammate.refresh_from_db()
    owner.refresh_from_db()
    assert teammate.default_organization.is_personal
    assert Membership.objects.filter(user=teammate, organization=teammate.default_organization).exists()
    assert owner.default_organization is None
    # Tokens naming the deleted organization stop working.
    assert teammate_client.get("/api/organizations/current").status_code == 401


@pytest.mark.parametrize("who", ["admin", "teammate"])
def test_only_an_owner_deletes_the_organization(request, org, who):
    client = make_client(request.getfixturevalue(who), org)

    response = client.delete("/api/organizations/current")

    assert response.status_code == 403
    assert Organization.objects.filter(id=org.id).exists()


def test_a_failed_subscription_cancellation_deletes_nothing(
    owner_client, teammate, org, make_subscription, razorpay_keys, rzp
):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)
    cancel = rzp.post(
        cancel_url(subscription.razorpay_subscription_id), body=requests.exceptions.ConnectionError("Razorpay is down")
    )

    response = owner_client.delete("/api/organizations/current")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert cancel.call_count == 1
    assert Organization.objects.filter(id=org.id).exists()
    assert Membership.objects.filter(organization=org, user=teammate).exists()
    subscription.refresh_from_db()
    assert subscription.status == SubscriptionStatus.ACTIVE
    assert not AuditLog.objects.filter(action="organization.delete").exists()


def test_deleting_my_organization_keeps_my_other_organizations(owner, owner_client, org):
    other = Organization.objects.create(name="Side project")
    join(owner, other, Role.MEMBER)
    bystander = new_user("bo@else.test")

    assert owner_client.delete("/api/organizations/current").status_code == 204

    owner.refresh_from_db()
    assert owner.default_organization == other
    assert Organization.objects.filter(id=bystander.default_organization_id).exists()
