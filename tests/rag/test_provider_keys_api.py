"""Organization provider keys: owners and admins store them (encrypted), nobody reads
them back, and they serve the organization's own calls."""

import pytest

from accounts.models import Membership, Role
from rag import crypto
from rag.models import ProviderKey
from raptorflow.models import AuditLog

URL = "/api/organizations/current/provider-keys"


def put_key(client, provider, api_key):
    return client.put(f"{URL}/{provider}", {"api_key": api_key}, format="json")


def test_owner_stores_key_encrypted_and_sees_only_last4(owner_client, org):
    response = put_key(owner_client, "openai", "sk-org-secret-abcd")

    assert response.status_code == 201
    assert response.json()["provider"] == "openai"
    assert response.json()["last4"] == "abcd"
    assert "sk-org-secret-abcd" not in response.content.decode()
    stored = ProviderKey.objects.get(organization=org, provider="openai")
    assert "sk-org-secret" not in stored.encrypted_key
    assert crypto.decrypt(stored.encrypted_key) == "sk-org-secret-abcd"
    assert AuditLog.objects.filter(action="provider_key.set", organization_id=org.pk).exists()


def test_list_never_returns_keys(owner_client):
    put_key(owner_client, "openai", "sk-org-secret-abcd")
    put_key(owner_client, "gemini", "gemini-org-secret-wxyz")

    response = owner_client.get(URL)

    assert response.status_code == 200
    assert [(k["provider"], k["last4"]) for k in response.json()["results"]] == [("gemini", "wxyz"), ("openai", "abcd")]
    body = response.content.decode()
    assert "secret" not in body
    assert "api_key" not in body and "encrypted" not in body


def test_replacing_a_key_answers_200_and_keeps_one_row(owner_client, org):
    put_key(owner_client, "openrouter", "sk-or-first-1111")

    response = put_key(owner_client, "openrouter", "sk-or-second-2222")

    assert response.status_code == 200
    assert response.json()["last4"] == "2222"
    stored = ProviderKey.objects.get(organization=org, provider="openrouter")
    assert crypto.decrypt(stored.encrypted_key) == "sk-or-second-2222"


def test_admin_may_manage_keys(teammate_client, teammate, org):
    Membership.objects.filter(user=teammate, organization=org).update(role=Role.ADMIN)

    assert put_key(teammate_client, "gemini", "gemini-admin-key-9876").status_code == 201


def test_member_cannot_list_set_or_delete_keys(owner_client, teammate_client, org):
    put_key(owner_client, "openai", "sk-org-secret-abcd")

    assert teammate_client.get(URL).status_code == 403
    assert put_key(teammate_client, "openai", "sk-member-key-0000").status_code == 403
    assert teammate_client.delete(f"{URL}/openai").status_code == 403
    stored = ProviderKey.objects.get(organization=org, provider="openai")
    assert crypto.decrypt(stored.encrypted_key) == "sk-org-secret-abcd"


def test_delete_removes_the_key(owner_client, org):
    put_key(owner_client, "openai", "sk-org-secret-abcd")

    response = owner_client.delete(f"{URL}/openai")

    assert response.status_code == 204
    assert not ProviderKey.objects.filter(organization=org).exists()
    assert owner_client.delete(f"{URL}/openai").status_code == 404


def test_outsider_cannot_see_or_delete_another_organizations_key(owner_client, outsider_client, org):
    put_key(owner_client, "openai", "sk-org-secret-abcd")

    assert outsider_client.get(URL).json()["results"] == []
    assert outsider_client.delete(f"{URL}/openai").status_code == 404
    assert ProviderKey.objects.filter(organization=org, provider="openai").exists()


@pytest.mark.parametrize(
    "body, field",
    [({"api_key": "short"}, "api_key"), ({"api_key": "has space inside"}, "api_key"), ({}, "api_key"),
     ({"api_key": "sk-valid-key-1234", "last4": "1234"}, "last4")],
)
def test_invalid_key_bodies_are_400(owner_client, body, field):
    response = owner_client.put(f"{URL}/openai", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_unknown_provider_is_404(owner_client):
    assert put_key(owner_client, "anthropic", "sk-ant-key-1234").status_code == 404


def test_anonymous_is_401(anon_client):
    assert anon_client.get(URL).status_code == 401
