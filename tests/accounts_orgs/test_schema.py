"""The organization endpoints are in the OpenAPI schema, typed precisely enough that a
generated TypeScript client needs no `unknown`."""

import pytest

pytestmark = pytest.mark.django_db

OPERATIONS = {
    "/api/organizations": {"get", "post"},
    "/api/organizations/current": {"get", "patch", "delete"},
    "/api/auth/switch-organization": {"post"},
    "/api/organizations/current/members": {"get"},
    "/api/organizations/current/members/{user_id}": {"patch", "delete"},
    "/api/organizations/current/invitations": {"get", "post"},
    "/api/organizations/current/invitations/{id}": {"delete"},
    "/api/invitations/{token}/accept": {"post"},
    "/api/organizations/current/domains": {"get", "post"},
    "/api/organizations/current/domains/{id}": {"delete"},
    "/api/auth/me/export": {"get"},
    "/api/auth/me": {"get", "delete"},
}
COMPONENTS = [
    "MyOrganization",
    "Member",
    "Invitation",
    "DomainClaim",
    "AccountExport",
    "ExportConversation",
    "OrganizationCreateInputRequest",
    "OrganizationUpdateInputRequest",
    "SwitchOrganizationInputRequest",
    "MemberRoleInputRequest",
    "InvitationCreateInputRequest",
    "DomainClaimInputRequest",
]
TYPED = {"type", "$ref", "allOf", "oneOf", "anyOf"}


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker):
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_every_organization_operation_is_documented(schema):
    for path, methods in OPERATIONS.items():
        assert path in schema["paths"], path
        assert methods <= set(schema["paths"][path]), path


def test_organization_schemas_have_no_untyped_properties(schema):
    components = schema["components"]["schemas"]
    for name in COMPONENTS:
        for field, definition in components[name]["properties"].items():
            assert TYPED & set(definition), f"{name}.{field} has no type"


def test_invitation_status_and_roles_are_enums(schema):
    components = schema["components"]["schemas"]
    assert components["InvitationStatusEnum"]["enum"] == ["pending", "accepted", "revoked", "expired"]
    assert components["MembershipRoleEnum"]["enum"] == ["owner", "admin", "member"]
