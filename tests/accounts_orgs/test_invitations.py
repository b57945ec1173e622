import hashlib
import re
import socket
from datetime import timedelta

import pytest
from allauth.socialaccount.models import SocialAccount
from django.core import mail
from django.utils import timezone

from accounts.models import Invitation, Membership, Role
from raptorflow.models import AuditLog
from tests.accounts_orgs.conftest import new_user
from tests.conftest import make_client

pytestmark = pytest.mark.django_db

INVITATIONS = "/api/organizations/current/invitations"


def token_from_last_email() -> str:
    return re.search(r"/invitations/([A-Za-z0-9_-]+)", mail.outbox[-1].body).group(1)


def invite(client, email="nina@acme.test", role="member") -> tuple[dict, str]:
    response = client.post(INVITATIONS, {"email": email, "role": role}, format="json")
    assert response.status_code == 201, response.content
    return response.json(), token_from_last_email()


@pytest.fixture
def invitee(db):
    return new_user("nina@acme.test", "Nina New")


def accept(user, token):
    return make_client(user).post(f"/api/invitations/{token}/accept")


def test_owner_invites_by_email_and_only_the_token_hash_is_stored(owner, owner_client, org, settings):
    settings.FRONTEND_URL = "https://app.raptorflow.test"

    response = owner_client.post(INVITATIONS, {"email": "Nina@Acme.test", "role": "admin"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["email"], body["role"], body["status"]) == ("nina@acme.test", "admin", "pending")
    assert body["invited_by"]["id"] == str(owner.id)
    assert body["accepted_at"] is None and body["revoked_at"] is None
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["nina@acme.test"]
    assert org.name in message.subject
    token = token_from_last_email()
    assert f"https://app.raptorflow.test/invitations/{token}" in message.body
    invitation = Invitation.objects.get(id=body["id"])
    assert invitation.organization == org
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in response.content.decode()
    assert AuditLog.objects.filter(action="invitation.create", target_id=str(invitation.id)).exists()


def test_invitations_expire_after_seven_days_by_default(owner_client):
    body, _ = invite(owner_client)

    invitation = Invitation.objects.get(id=body["id"])
    assert abs((invitation.expires_at - invitation.created_at) - timedelta(days=7)) < timedelta(minutes=1)


def test_the_expiry_is_a_setting(owner_client, settings):
    settings.INVITATION_TTL_DAYS = 2

    body, _ = invite(owner_client)

    invitation = Invitation.objects.get(id=body["id"])
    assert abs((invitation.expires_at - invitation.created_at) - timedelta(days=2)) < timedelta(minutes=1)


def test_role_defaults_to_member(owner_client):
    response = owner_client.post(INVITATIONS, {"email": "nina@acme.test"}, format="json")

    assert response.status_code == 201
    assert response.json()["role"] == "member"


def test_admin_invites_members_and_admins_but_not_owners(admin_client):
    assert admin_client.post(INVITATIONS, {"email": "a@acme.test", "role": "admin"}, format="json").status_code == 201

    response = admin_client.post(INVITATIONS, {"email": "b@acme.test", "role": "owner"}, format="json")

    assert response.status_code == 403
    assert not Invitation.objects.filter(email="b@acme.test").exists()
    assert [m.to for m in mail.outbox] == [["a@acme.test"]]


def test_a_member_cannot_invite(teammate_client):
    response = teammate_client.post(INVITATIONS, {"email": "nina@acme.test"}, format="json")

    assert response.status_code == 403
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_inviting_a_current_member_is_a_conflict(owner_client, teammate):
    response = owner_client.post(INVITATIONS, {"email": "TOM@acme.test"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_member"
    assert not Invitation.objects.exists()


def test_a_second_pending_invitation_for_the_same_email_is_a_conflict(owner_client):
    invite(owner_client)

    response = owner_client.post(INVITATIONS, {"email": "NINA@acme.test"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invitation_pending"
    assert Invitation.objects.count() == 1


def test_a_new_invitation_may_follow_a_revoked_one(owner_client):
    body, _ = invite(owner_client)
    assert owner_client.delete(f"{INVITATIONS}/{body['id']}").status_code == 204

    invite(owner_client)

    assert Invitation.objects.count() == 2


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({}, "email"),
        ({"email": "a@b.test", "role": "king"}, "role"),
        ({"email": "a@b.test", "token_hash": "x"}, "token_hash"),
    ],
)
def test_invitation_input_is_validated(owner_client, payload, field):
    response = owner_client.post(INVITATIONS, payload, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Invitation.objects.exists()


def test_a_failed_email_keeps_no_invitation(owner_client, settings):
    # A real SMTP send to a loopback port nothing listens on: the connection is refused.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = closed_port.getsockname()
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_TIMEOUT = 5

        response = owner_client.post(INVITATIONS, {"email": "nina@acme.test"}, format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "email_unavailable"
    assert not Invitation.objects.exists()
    assert not AuditLog.objects.filter(action="invitation.create").exists()


def test_list_shows_each_invitation_with_its_status_and_filters_by_it(owner_client, admin_client, invitee):
    pending, _ = invite(owner_client, "p@acme.test")
    revoked, _ = invite(owner_client, "r@acme.test")
    owner_client.delete(f"{INVITATIONS}/{revoked['id']}")
    expired, _ = invite(owner_client, "e@acme.test")
    Invitation.objects.filter(id=expired["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    accepted, token = invite(owner_client, "nina@acme.test")
    assert accept(invitee, token).status_code == 201

    response = admin_client.get(INVITATIONS)

    assert response.status_code == 200
    statuses = {item["email"]: item["status"] for item in response.json()["results"]}
    assert statuses == {
        "p@acme.test": "pending",
        "r@acme.test": "revoked",
        "e@acme.test": "expired",
        "nina@acme.test": "accepted",
    }
    only_pending = admin_client.get(INVITATIONS, {"status": "pending"}).json()["results"]
    assert [item["email"] for item in only_pending] == ["p@acme.test"]
    assert admin_client.get(INVITATIONS, {"status": "lost"}).status_code == 400


def test_a_member_cannot_list_invitations(owner_client, teammate_client):
    invite(owner_client)

    assert teammate_client.get(INVITATIONS).status_code == 403


def test_the_list_never_shows_another_organizations_invitations(owner_client, outsider_client):
    invite(owner_client)

    response = outsider_client.get(INVITATIONS)

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_the_invited_user_accepts_and_joins_with_the_invited_role(owner_client, org, invitee):
    body, token = invite(owner_client, "Nina@ACME.test", role="admin")
    # Stored addresses may differ in case from the account's (e.g. rows written before
    # normalisation): the match ignores case.
    Invitation.objects.filter(id=body["id"]).update(email="Nina@ACME.test")

    response = accept(invitee, token)

    assert response.status_code == 201
    assert response.json()["id"] == str(org.id)
    assert response.json()["role"] == "admin"
    assert Membership.objects.get(user=invitee, organization=org).role == Role.ADMIN
    invitation = Invitation.objects.get(id=body["id"])
    assert invitation.accepted_by == invitee
    assert invitation.accepted_at is not None
    assert AuditLog.objects.filter(action="invitation.accept", actor_id=invitee.id).exists()
    # The new member can now switch into the organization.
    switched = make_client(invitee).post(
        "/api/auth/switch-organization", {"organization_id": str(org.id)}, format="json"
    )
    assert switched.status_code == 200
    assert switched.json()["role"] == "admin"


def test_accepting_twice_is_an_idempotent_repeat(owner_client, org, invitee):
    _, token = invite(owner_client)
    assert accept(invitee, token).status_code == 201

    response = accept(invitee, token)

    assert response.status_code == 200
    assert Membership.objects.filter(user=invitee, organization=org).count() == 1


def test_an_invitation_cannot_be_reused_after_the_member_was_removed(owner_client, org, invitee):
    _, token = invite(owner_client)
    assert accept(invitee, token).status_code == 201
    assert owner_client.delete(f"/api/organizations/current/members/{invitee.id}").status_code == 204

    response = accept(invitee, token)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invitation_used"
    assert not Membership.objects.filter(user=invitee, organization=org).exists()


def test_an_expired_invitation_is_refused(owner_client, org, invitee):
    body, token = invite(owner_client)
    Invitation.objects.filter(id=body["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = accept(invitee, token)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invitation_expired"
    assert not Membership.objects.filter(user=invitee, organization=org).exists()
    assert Invitation.objects.get(id=body["id"]).accepted_at is None


def test_a_revoked_invitation_no_longer_works(owner, owner_client, org, invitee):
    body, token = invite(owner_client)

    response = owner_client.delete(f"{INVITATIONS}/{body['id']}")

    assert response.status_code == 204
    assert Invitation.objects.get(id=body["id"]).revoked_at is not None
    assert AuditLog.objects.filter(action="invitation.revoke", actor_id=owner.id).exists()
    assert accept(invitee, token).status_code == 404
    assert not Membership.objects.filter(user=invitee, organization=org).exists()


def test_revoking_twice_is_an_idempotent_repeat(owner_client):
    body, _ = invite(owner_client)
    assert owner_client.delete(f"{INVITATIONS}/{body['id']}").status_code == 204

    assert owner_client.delete(f"{INVITATIONS}/{body['id']}").status_code == 204
    assert AuditLog.objects.filter(action="invitation.revoke").count() == 1


def test_an_accepted_invitation_cannot_be_revoked(owner_client, invitee):
    body, token = invite(owner_client)
    accept(invitee, token)

    response = owner_client.delete(f"{INVITATIONS}/{body['id']}")

    assert response.status_code == 409
    assert Invitation.objects.get(id=body["id"]).revoked_at is None


def test_a_member_cannot_revoke(owner_client, teammate_client):
    body, _ = invite(owner_client)

    assert teammate_client.delete(f"{INVITATIONS}/{body['id']}").status_code == 403
    assert Invitation.objects.get(id=body["id"]).revoked_at is None


def test_an_outsider_cannot_revoke_our_invitation(owner_client, outsider_client):
    body, _ = invite(owner_client)

    assert outsider_client.delete(f"{INVITATIONS}/{body['id']}").status_code == 404
    assert Invitation.objects.get(id=body["id"]).revoked_at is None


def test_someone_with_another_email_cannot_accept(owner_client, org, outsider):
    body, token = invite(owner_client)

    response = accept(outsider, token)

    assert response.status_code == 404
    assert not Membership.objects.filter(user=outsider, organization=org).exists()
    assert Invitation.objects.get(id=body["id"]).accepted_at is None


def test_an_unknown_token_is_a_404(invitee):
    assert accept(invitee, "no-such-token").status_code == 404


def test_accepting_needs_a_signed_in_user(owner_client, anon_client):
    _, token = invite(owner_client)

    assert anon_client.post(f"/api/invitations/{token}/accept").status_code == 401
    assert Invitation.objects.get().accepted_at is None


def test_someone_already_in_the_organization_keeps_their_role(owner_client, org, invitee):
    _, token = invite(owner_client, role="admin")
    Membership.objects.create(user=invitee, organization=org, role=Role.MEMBER)

    response = accept(invitee, token)

    assert response.status_code == 200
    assert response.json()["role"] == "member"
    assert Invitation.objects.get().accepted_by == invitee


def test_an_account_whose_google_email_is_unverified_cannot_accept(owner_client, org, invitee):
    SocialAccount.objects.create(
        user=invitee, provider="google", uid="sub-nina", extra_data={"email": "nina@acme.test", "email_verified": False}
    )
    body, token = invite(owner_client)

    response = accept(invitee, token)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_unverified"
    assert not Membership.objects.filter(user=invitee, organization=org).exists()
    assert Invitation.objects.get(id=body["id"]).accepted_at is None


def test_an_account_whose_google_email_is_verified_accepts(owner_client, org, invitee):
    SocialAccount.objects.create(
        user=invitee, provider="google", uid="sub-nina", extra_data={"email": "Nina@acme.test", "email_verified": True}
    )
    _, token = invite(owner_client)

    assert accept(invitee, token).status_code == 201
    assert Membership.objects.filter(user=invitee, organization=org).exists()


def test_an_organization_name_with_a_line_break_still_sends_the_invitation(owner_client, org):
    org.name = "Acme\nMarketing"
    org.save()

    invite(owner_client)

    assert mail.outbox[0].subject == "Join Acme Marketing on RaptorFlow"
