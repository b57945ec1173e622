import pytest

from accounts.models import Membership, Role
from raptorflow.models import AuditLog
from tests.accounts_orgs.conftest import join, make_conversation, new_user, personal_org
from tests.conftest import make_client

pytestmark = pytest.mark.django_db


def url(user) -> str:
    return f"/api/organizations/current/members/{user.id}"


def role_of(user, org) -> str | None:
    membership = Membership.objects.filter(user=user, organization=org).first()
    return membership.role if membership else None


def test_every_member_lists_the_members_oldest_first(teammate_client, owner, teammate, admin, outsider):
    response = teammate_client.get("/api/organizations/current/members")

    assert response.status_code == 200
    results = response.json()["results"]
    assert [(m["email"], m["role"]) for m in results] == [
        ("olivia@acme.test", "owner"),
        ("tom@acme.test", "member"),
        ("ada@acme.test", "admin"),
    ]
    assert set(results[0]) == {"user_id", "email", "name", "avatar_url", "role", "joined_at"}
    assert results[0]["user_id"] == str(owner.id)


def test_owner_promotes_a_member_to_admin_and_it_is_audited(owner, owner_client, teammate, org):
    response = owner_client.patch(url(teammate), {"role": "admin"}, format="json")

    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    assert response.json()["user_id"] == str(teammate.id)
    assert role_of(teammate, org) == Role.ADMIN
    entry = AuditLog.objects.get(action="membership.role_change")
    assert entry.actor_id == owner.id
    assert entry.organization_id == org.id
    assert entry.target_id == str(teammate.id)
    assert entry.details == {"old_role": "member", "new_role": "admin"}


def test_admin_promotes_and_demotes_non_owners(admin_client, teammate, org):
    assert admin_client.patch(url(teammate), {"role": "admin"}, format="json").status_code == 200
    assert role_of(teammate, org) == Role.ADMIN
    assert admin_client.patch(url(teammate), {"role": "member"}, format="json").status_code == 200
    assert role_of(teammate, org) == Role.MEMBER


def test_admin_cannot_grant_the_owner_role(admin_client, teammate, org):
    response = admin_client.patch(url(teammate), {"role": "owner"}, format="json")

    assert response.status_code == 403
    assert role_of(teammate, org) == Role.MEMBER


def test_admin_cannot_demote_or_remove_an_owner(admin_client, owner, org):
    assert admin_client.patch(url(owner), {"role": "member"}, format="json").status_code == 403
    assert admin_client.delete(url(owner)).status_code == 403
    assert role_of(owner, org) == Role.OWNER


def test_owner_makes_another_owner_who_can_then_demote_the_first(owner, owner_client, teammate, org):
    assert owner_client.patch(url(teammate), {"role": "owner"}, format="json").status_code == 200
    second_owner = make_client(teammate, org)

    response = second_owner.patch(url(owner), {"role": "admin"}, format="json")

    assert response.status_code == 200
    assert role_of(owner, org) == Role.ADMIN
    assert role_of(teammate, org) == Role.OWNER


def test_the_last_owner_cannot_be_demoted(owner, owner_client, org):
    response = owner_client.patch(url(owner), {"role": "admin"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "last_owner"
    assert role_of(owner, org) == Role.OWNER


def test_the_last_owner_cannot_leave(owner, owner_client, teammate, org):
    response = owner_client.delete(url(owner))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "last_owner"
    assert role_of(owner, org) == Role.OWNER


def test_an_owner_may_leave_while_another_owner_stays(owner, owner_client, teammate, org):
    Membership.objects.filter(user=teammate, organization=org).update(role=Role.OWNER)

    response = owner_client.delete(url(owner))

    assert response.status_code == 204
    assert role_of(owner, org) is None
    assert AuditLog.objects.filter(action="membership.leave", actor_id=owner.id).exists()


def test_setting_the_same_role_again_is_a_quiet_success(owner_client, teammate, org):
    response = owner_client.patch(url(teammate), {"role": "member"}, format="json")

    assert response.status_code == 200
    assert not AuditLog.objects.filter(action="membership.role_change").exists()


def test_a_member_cannot_change_roles_not_even_their_own(teammate, teammate_client, admin, org):
    assert teammate_client.patch(url(admin), {"role": "member"}, format="json").status_code == 403
    assert teammate_client.patch(url(teammate), {"role": "admin"}, format="json").status_code == 403
    assert role_of(admin, org) == Role.ADMIN
    assert role_of(teammate, org) == Role.MEMBER


def test_a_member_cannot_remove_others(teammate_client, admin, org):
    assert teammate_client.delete(url(admin)).status_code == 403
    assert role_of(admin, org) == Role.ADMIN


def test_a_member_leaves_and_lands_in_their_own_organization(teammate, teammate_client, org):
    response = teammate_client.delete(url(teammate))

    assert response.status_code == 204
    assert role_of(teammate, org) is None
    teammate.refresh_from_db()
    assert teammate.default_organization == personal_org(teammate)
    entry = AuditLog.objects.get(action="membership.leave")
    assert (entry.actor_id, entry.target_id) == (teammate.id, str(teammate.id))


def test_admin_removes_a_member_and_it_is_audited(admin, admin_client, teammate, org):
    response = admin_client.delete(url(teammate))

    assert response.status_code == 204
    assert role_of(teammate, org) is None
    entry = AuditLog.objects.get(action="membership.remove")
    assert (entry.actor_id, entry.target_id, entry.details) == (admin.id, str(teammate.id), {"role": "member"})


def test_a_removed_member_loses_access_at_once(owner_client, teammate, teammate_client, org):
    conversation = make_conversation(org, teammate)
    assert teammate_client.get(f"/api/conversations/{conversation.id}").status_code == 200

    assert owner_client.delete(url(teammate)).status_code == 204

    # The very token they already hold is refused on the next request.
    for path in ("/api/organizations/current", f"/api/conversations/{conversation.id}", "/api/conversations"):
        response = teammate_client.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "user_inactive"


def test_a_removed_member_cannot_refresh_into_the_organization(owner_client, teammate, teammate_client, anon_client):
    assert owner_client.delete(url(teammate)).status_code == 204

    response = anon_client.post("/api/auth/refresh", {"refresh": teammate_client.tokens["refresh"]}, format="json")

    assert response.status_code == 401


def test_members_of_another_organization_are_out_of_reach(owner_client, outsider):
    outsider_org = outsider.default_organization

    assert owner_client.patch(url(outsider), {"role": "member"}, format="json").status_code == 404
    assert owner_client.delete(url(outsider)).status_code == 404
    assert role_of(outsider, outsider_org) == Role.OWNER


def test_an_outsider_cannot_touch_our_members(outsider_client, teammate, org):
    assert outsider_client.patch(url(teammate), {"role": "admin"}, format="json").status_code == 404
    assert outsider_client.delete(url(teammate)).status_code == 404
    assert role_of(teammate, org) == Role.MEMBER


def test_an_unknown_member_id_is_a_404(owner_client):
    assert owner_client.delete("/api/organizations/current/members/not-a-uuid").status_code == 404
    stranger = new_user("stranger@else.test")
    assert owner_client.delete(url(stranger)).status_code == 404


@pytest.mark.parametrize(
    ("payload", "field"), [({"role": "king"}, "role"), ({}, "role"), ({"role": "admin", "x": 1}, "x")]
)
def test_role_change_refuses_invalid_input(owner_client, teammate, org, payload, field):
    response = owner_client.patch(url(teammate), payload, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert role_of(teammate, org) == Role.MEMBER


def test_leaving_repoints_the_default_to_the_oldest_remaining_membership(admin, admin_client, org):
    later = new_user("founder@beta.test").default_organization
    join(admin, later, Role.MEMBER)

    assert admin_client.delete(url(admin)).status_code == 204

    admin.refresh_from_db()
    assert admin.default_organization == personal_org(admin)
