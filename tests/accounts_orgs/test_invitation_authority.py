"""An invitation carries only the authority its sender still has: demoting or removing a
member revokes their pending invitations for roles they can no longer grant (through the
API and the admin alike, audited), and acceptance checks the sender's role again."""

import pytest

from accounts.models import Invitation, Membership, Role
from raptorflow.models import AuditLog
from tests.accounts_orgs.conftest import join, new_user
from tests.accounts_orgs.test_admin_owner_rules import form_data
from tests.accounts_orgs.test_invitations import accept, invite
from tests.conftest import make_client

pytestmark = pytest.mark.django_db

MEMBERS = "/api/organizations/current/members"


def revoked(body) -> bool:
    return Invitation.objects.get(id=body["id"]).revoked_at is not None


def test_a_removed_admins_pending_invitations_are_revoked_and_cannot_make_an_admin(
    owner, owner_client, admin, admin_client, org
):
    admin_invitation, admin_token = invite(admin_client, "nina@acme.test", role="admin")
    member_invitation, member_token = invite(admin_client, "max@acme.test", role="member")
    owners_invitation, _ = invite(owner_client, "olga@acme.test", role="admin")

    assert owner_client.delete(f"{MEMBERS}/{admin.id}").status_code == 204

    assert revoked(admin_invitation) and revoked(member_invitation)
    assert not revoked(owners_invitation)
    entries = AuditLog.objects.filter(action="invitation.revoke", actor_id=owner.id)
    assert {entry.target_id for entry in entries} == {admin_invitation["id"], member_invitation["id"]}
    assert {entry.details["reason"] for entry in entries} == {"inviter_removed"}
    nina = new_user("nina@acme.test")
    assert accept(nina, admin_token).status_code == 404
    assert accept(new_user("max@acme.test"), member_token).status_code == 404
    assert not Membership.objects.filter(organization=org, user=nina).exists()


def test_an_admin_demoted_to_member_loses_every_pending_invitation(owner, owner_client, admin, admin_client):
    admin_invitation, _ = invite(admin_client, "nina@acme.test", role="admin")
    member_invitation, _ = invite(admin_client, "max@acme.test", role="member")

    response = owner_client.patch(f"{MEMBERS}/{admin.id}", {"role": "member"}, format="json")

    assert response.status_code == 200
    assert revoked(admin_invitation) and revoked(member_invitation)
    reasons = AuditLog.objects.filter(action="invitation.revoke").values_list("details__reason", flat=True)
    assert list(reasons) == ["inviter_demoted", "inviter_demoted"]


def test_an_owner_demoted_to_admin_loses_only_their_owner_invitations(owner_client, org):
    otto = new_user("otto@acme.test")
    join(otto, org, Role.OWNER)
    otto_client = make_client(otto, org)
    owner_invitation, owner_token = invite(otto_client, "nina@acme.test", role="owner")
    admin_invitation, admin_token = invite(otto_client, "max@acme.test", role="admin")

    assert owner_client.patch(f"{MEMBERS}/{otto.id}", {"role": "admin"}, format="json").status_code == 200

    assert revoked(owner_invitation) and not revoked(admin_invitation)
    assert accept(new_user("nina@acme.test"), owner_token).status_code == 404
    max_ = new_user("max@acme.test")
    assert accept(max_, admin_token).status_code == 201
    assert Membership.objects.get(organization=org, user=max_).role == Role.ADMIN


def test_an_admin_who_leaves_takes_their_pending_invitations_along(admin, admin_client):
    body, _ = invite(admin_client, "nina@acme.test", role="member")

    assert admin_client.delete(f"{MEMBERS}/{admin.id}").status_code == 204

    assert revoked(body)


def test_a_promotion_keeps_pending_invitations(owner_client, admin, admin_client):
    body, _ = invite(admin_client, "nina@acme.test", role="admin")

    assert owner_client.patch(f"{MEMBERS}/{admin.id}", {"role": "owner"}, format="json").status_code == 200

    assert not revoked(body)
    assert not AuditLog.objects.filter(action="invitation.revoke").exists()


def test_an_operators_demotion_in_the_admin_revokes_too(site, operator, admin, admin_client, org):
    body, _ = invite(admin_client, "nina@acme.test", role="admin")
    membership = Membership.objects.get(user=admin, organization=org)
    url = f"/admin/accounts/membership/{membership.pk}/change/"

    response = site.post(url, form_data(site.get(url)) | {"role": Role.MEMBER}, follow=True)

    assert response.status_code == 200
    assert revoked(body)
    assert AuditLog.objects.get(action="invitation.revoke").actor_id == operator.id


def test_acceptance_rechecks_the_senders_role(admin, admin_client, org):
    # A demotion that happened without the revocation (rows written before it existed).
    body, token = invite(admin_client, "nina@acme.test", role="admin")
    Membership.objects.filter(user=admin, organization=org).update(role=Role.MEMBER)
    nina = new_user("nina@acme.test")

    response = accept(nina, token)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not Membership.objects.filter(organization=org, user=nina).exists()
    assert Invitation.objects.get(id=body["id"]).accepted_at is None


def test_an_invitation_whose_sender_is_no_longer_a_member_cannot_be_accepted(admin, admin_client, org):
    _, token = invite(admin_client, "nina@acme.test", role="member")
    Membership.objects.filter(user=admin, organization=org).delete()
    nina = new_user("nina@acme.test")

    assert accept(nina, token).status_code == 404
    assert not Membership.objects.filter(organization=org, user=nina).exists()
