"""Every organization action × every role: owner, admin, member of the organization, and
an outsider (a member of another organization) aiming at the same rows by id.

Allowed actions change the organization's state as asked; refused ones (403 for a role
too low inside the caller's own organization, 404 for anything of another organization)
leave it exactly as it was."""

from dataclasses import dataclass

import pytest

from accounts.models import DomainClaim, Invitation, Membership, Organization, Role
from accounts.services import invitation_create
from tests.accounts_orgs.conftest import join, new_user
from tests.conftest import make_client

pytestmark = pytest.mark.django_db

OK, CREATED, GONE, FORBIDDEN, NOT_FOUND = 200, 201, 204, 403, 404


@dataclass
class World:
    org: Organization
    mia: object  # a second member, the usual target
    otto: object  # a second owner
    invitation: Invitation
    claim: DomainClaim


@pytest.fixture
def world(owner, admin, teammate, outsider, org):
    mia = new_user("mia@acme.test", "Mia Member")
    join(mia, org, Role.MEMBER)
    otto = new_user("otto@acme.test", "Otto Owner")
    join(otto, org, Role.OWNER)
    invitation = invitation_create(
        actor=Membership.objects.get(user=owner, organization=org), email="ivy@acme.test", role=Role.MEMBER
    )
    claim = DomainClaim.objects.create(organization=org, domain="acme.test")
    return World(org=org, mia=mia, otto=otto, invitation=invitation, claim=claim)


def snapshot(org) -> tuple:
    """Everything the matrix's actions could change."""
    org_row = Organization.objects.filter(pk=org.pk).values_list("name", "settings").first()
    return (
        org_row,
        sorted(Membership.objects.filter(organization=org).values_list("user__email", "role")),
        sorted(Invitation.objects.filter(organization=org).values_list("email", "role", "revoked_at")),
        sorted(DomainClaim.objects.filter(organization=org).values_list("domain", flat=True)),
    )


def member_url(user) -> str:
    return f"/api/organizations/current/members/{user.id}"


# name -> (request builder, whether it writes, expected status per role)
ACTIONS = {
    "read current": (lambda c, w: c.get("/api/organizations/current"), False, dict(owner=OK, admin=OK, member=OK)),
    "rename": (
        lambda c, w: c.patch("/api/organizations/current", {"name": "Renamed"}, format="json"),
        True,
        dict(owner=OK, admin=OK, member=FORBIDDEN),
    ),
    "delete organization": (
        lambda c, w: c.delete("/api/organizations/current"),
        True,
        dict(owner=GONE, admin=FORBIDDEN, member=FORBIDDEN),
    ),
    "list members": (
        lambda c, w: c.get("/api/organizations/current/members"),
        False,
        dict(owner=OK, admin=OK, member=OK),
    ),
    "make a member admin": (
        lambda c, w: c.patch(member_url(w.mia), {"role": "admin"}, format="json"),
        True,
        dict(owner=OK, admin=OK, member=FORBIDDEN, outsider=NOT_FOUND),
    ),
    "make a member owner": (
        lambda c, w: c.patch(member_url(w.mia), {"role": "owner"}, format="json"),
        True,
        dict(owner=OK, admin=FORBIDDEN, member=FORBIDDEN, outsider=NOT_FOUND),
    ),
    "demote an owner": (
        lambda c, w: c.patch(member_url(w.otto), {"role": "member"}, format="json"),
        True,
        dict(owner=OK, admin=FORBIDDEN, member=FORBIDDEN, outsider=NOT_FOUND),
    ),
    "remove a member": (
        lambda c, w: c.delete(member_url(w.mia)),
        True,
        dict(owner=GONE, admin=GONE, member=FORBIDDEN, outsider=NOT_FOUND),
    ),
    "remove an owner": (
        lambda c, w: c.delete(member_url(w.otto)),
        True,
        dict(owner=GONE, admin=FORBIDDEN, member=FORBIDDEN, outsider=NOT_FOUND),
    ),
    "invite a member": (
        lambda c, w: c.post("/api/organizations/current/invitations", {"email": "new@acme.test"}, format="json"),
        True,
        dict(owner=CREATED, admin=CREATED, member=FORBIDDEN),
    ),
    "invite an owner": (
        lambda c, w: c.post(
            "/api/organizations/current/invitations", {"email": "new@acme.test", "role": "owner"}, format="json"
        ),
        True,
        dict(owner=CREATED, admin=FORBIDDEN, member=FORBIDDEN),
    ),
    "list invitations": (
        lambda c, w: c.get("/api/organizations/current/invitations"),
        False,
        dict(owner=OK, admin=OK, member=FORBIDDEN),
    ),
    "revoke an invitation": (
        lambda c, w: c.delete(f"/api/organizations/current/invitations/{w.invitation.id}"),
        True,
        dict(owner=GONE, admin=GONE, member=FORBIDDEN, outsider=NOT_FOUND),
    ),
    "claim a domain": (
        lambda c, w: c.post("/api/organizations/current/domains", {"domain": "acme.example"}, format="json"),
        True,
        dict(owner=CREATED, admin=CREATED, member=FORBIDDEN),
    ),
    "list domains": (
        lambda c, w: c.get("/api/organizations/current/domains"),
        False,
        dict(owner=OK, admin=OK, member=FORBIDDEN),
    ),
    "withdraw a domain": (
        lambda c, w: c.delete(f"/api/organizations/current/domains/{w.claim.id}"),
        True,
        dict(owner=GONE, admin=GONE, member=FORBIDDEN, outsider=NOT_FOUND),
    ),
    "switch into it": (
        lambda c, w: c.post("/api/auth/switch-organization", {"organization_id": str(w.org.id)}, format="json"),
        False,
        dict(owner=OK, admin=OK, member=OK, outsider=NOT_FOUND),
    ),
}

CASES = [(action, role, status) for action, (_, _, expected) in ACTIONS.items() for role, status in expected.items()]


@pytest.mark.parametrize(("action", "role", "expected"), CASES, ids=[f"{a}-{r}" for a, r, _ in CASES])
def test_role_matrix(request, world, action, role, expected):
    caller = {"owner": "owner", "admin": "admin", "member": "teammate", "outsider": "outsider"}[role]
    user = request.getfixturevalue(caller)
    client = make_client(user, world.org if role != "outsider" else user.default_organization)
    send, writes, _ = ACTIONS[action]
    before = snapshot(world.org)

    response = send(client, world)

    assert response.status_code == expected, response.content
    if expected >= 400:
        assert "error" in response.json()
    if expected >= 400 or not writes:
        assert snapshot(world.org) == before
    else:
        assert snapshot(world.org) != before
