"""Each action's role rule lives in one place. Writes: in their service, which refuses a
member even when called directly, without any view (a management command, a job, the
shell). Reads only managers may do: a permission class declared on the view. No view checks
a role by hand."""

import ast
from pathlib import Path

import pytest

from accounts import services as accounts_services
from accounts.models import DomainClaim, Invitation, Membership, Role
from billing import services as billing_services
from billing.models import Subscription
from rag import crypto
from rag import services as rag_services
from rag.models import ProviderKey
from raptorflow.errors import PermissionDenied
from raptorflow.models import AuditLog

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]
APPS = ["accounts", "billing", "conversations", "search", "rag"]


@pytest.fixture
def member(teammate, org) -> Membership:
    membership = Membership.objects.get(user=teammate, organization=org)
    assert membership.role == Role.MEMBER
    return membership


@pytest.fixture
def manager(owner, org) -> Membership:
    return Membership.objects.get(user=owner, organization=org)


def test_a_member_cannot_subscribe_through_the_service(member, pro_plan, razorpay_keys, rzp):
    with pytest.raises(PermissionDenied):
        billing_services.subscription_start(actor=member, plan=pro_plan)

    assert len(rzp.calls) == 0
    assert not Subscription.objects.exists()
    assert not AuditLog.objects.filter(action="billing.subscribe").exists()


def test_a_member_cannot_cancel_through_the_service(member, make_subscription, razorpay_keys, rzp):
    subscription = make_subscription()

    with pytest.raises(PermissionDenied):
        billing_services.subscription_cancel(actor=member, at_cycle_end=False)

    assert len(rzp.calls) == 0
    subscription.refresh_from_db()
    assert (subscription.status, subscription.cancel_at_cycle_end) == ("active", False)


def test_a_member_cannot_set_a_provider_key_through_the_service(member, org):
    with pytest.raises(PermissionDenied):
        rag_services.provider_key_set(actor=member, provider="openai", api_key="sk-member-key-0000")

    assert not ProviderKey.objects.filter(organization=org).exists()
    assert not AuditLog.objects.filter(action="provider_key.set").exists()


def test_a_member_cannot_delete_a_provider_key_through_the_service(member, manager, org):
    stored, _ = rag_services.provider_key_set(actor=manager, provider="openai", api_key="sk-org-secret-abcd")

    with pytest.raises(PermissionDenied):
        rag_services.provider_key_delete(actor=member, provider_key=stored)

    assert crypto.decrypt(ProviderKey.objects.get(pk=stored.pk).encrypted_key) == "sk-org-secret-abcd"
    assert not AuditLog.objects.filter(action="provider_key.delete").exists()


def test_a_manager_sets_and_deletes_a_provider_key_through_the_service(manager, owner, org):
    stored, created = rag_services.provider_key_set(actor=manager, provider="gemini", api_key="gemini-key-9876")

    assert created
    assert (stored.organization_id, stored.updated_by_id, stored.last4) == (org.pk, owner.pk, "9876")
    rag_services.provider_key_delete(actor=manager, provider_key=stored)
    assert not ProviderKey.objects.filter(organization=org).exists()
    entry = AuditLog.objects.get(action="provider_key.delete")
    assert (entry.actor_id, entry.organization_id) == (owner.pk, org.pk)


@pytest.mark.parametrize(
    "action",
    [
        "organization_update",
        "invitation_create",
        "invitation_revoke",
        "domain_claim_create",
        "domain_claim_delete",
        "membership_change_role",
        "membership_remove",
    ],
)
def test_a_member_is_refused_by_every_accounts_service_that_manages_the_organization(
    action, member, manager, owner, org
):
    mia = accounts_services.user_create_with_personal_organization(email="mia@acme.test", name="Mia Member")
    target = Membership.objects.create(organization=org, user=mia, role=Role.MEMBER)
    invitation = accounts_services.invitation_create(actor=manager, email="ivy@acme.test", role=Role.MEMBER)
    claim = DomainClaim.objects.create(organization=org, domain="acme.test")
    calls = {
        "organization_update": lambda: accounts_services.organization_update(actor=member, name="Renamed"),
        "invitation_create": lambda: accounts_services.invitation_create(
            actor=member, email="new@acme.test", role=Role.MEMBER
        ),
        "invitation_revoke": lambda: accounts_services.invitation_revoke(actor=member, invitation=invitation),
        "domain_claim_create": lambda: accounts_services.domain_claim_create(actor=member, domain="acme.example"),
        "domain_claim_delete": lambda: accounts_services.domain_claim_delete(actor=member, claim=claim),
        "membership_change_role": lambda: accounts_services.membership_change_role(
            actor=member, target=target, role=Role.ADMIN
        ),
        "membership_remove": lambda: accounts_services.membership_remove(actor=member, target=target),
    }
    before = (
        org.name,
        sorted(Membership.objects.filter(organization=org).values_list("user__email", "role")),
        sorted(Invitation.objects.filter(organization=org).values_list("email", "revoked_at")),
        sorted(DomainClaim.objects.filter(organization=org).values_list("domain", flat=True)),
    )

    with pytest.raises(PermissionDenied):
        calls[action]()

    org.refresh_from_db()
    assert before == (
        org.name,
        sorted(Membership.objects.filter(organization=org).values_list("user__email", "role")),
        sorted(Invitation.objects.filter(organization=org).values_list("email", "revoked_at")),
        sorted(DomainClaim.objects.filter(organization=org).values_list("domain", flat=True)),
    )


def _view_modules():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "views" in relative.parts or relative.name == "views.py":
                yield relative, ast.parse(path.read_text())


def test_no_view_checks_a_role_by_hand():
    """Roles are checked by services (writes) and by permission classes declared on views
    (manager-only reads), never inside a handler: a second copy of a rule drifts."""
    found = []
    for relative, tree in _view_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "require_role":
                found.append(f"{relative}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.Name) and node.id in ("MANAGER_ROLES", "Role", "require_manager", "require_owner"):
                found.append(f"{relative}:{node.lineno} {node.id}")

    assert found == []
