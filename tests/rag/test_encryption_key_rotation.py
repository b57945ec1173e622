"""Encryption keys can be rotated: ENCRYPTION_KEY alone keeps working; ENCRYPTION_KEYS
(newest first) wins when set, encrypting with the newest and decrypting with any; and
`manage.py rotate_encryption_keys` re-encrypts the stored provider keys with the newest,
idempotently, printing how many."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from rag import crypto
from rag.models import ProviderKey
from rag.selectors import chat_api_keys

pytestmark = pytest.mark.django_db

URL = "/api/organizations/current/provider-keys"
OLD, NEW = "old-encryption-key-" + "o" * 24, "new-encryption-key-" + "n" * 24


@pytest.fixture
def stored_with_old_key(owner_client, org, settings):
    settings.ENCRYPTION_KEY, settings.ENCRYPTION_KEYS = OLD, []
    response = owner_client.put(f"{URL}/openai", {"api_key": "sk-org-secret-abcd"}, format="json")
    assert response.status_code == 201
    return ProviderKey.objects.get(organization=org, provider="openai")


def rotate() -> str:
    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_encryption_key_alone_keeps_working(stored_with_old_key, org):
    assert chat_api_keys(organization=org)["openai"] == "sk-org-secret-abcd"


def test_encryption_keys_wins_and_decrypts_with_any_key(stored_with_old_key, org, settings, owner_client):
    settings.ENCRYPTION_KEYS = [NEW, OLD]
    settings.ENCRYPTION_KEY = "ignored-once-encryption-keys-is-set"

    assert chat_api_keys(organization=org)["openai"] == "sk-org-secret-abcd"
    # A key stored now uses the newest: the old key alone no longer opens it.
    assert owner_client.put(f"{URL}/gemini", {"api_key": "gm-org-secret-wxyz"}, format="json").status_code == 201
    ciphertext = ProviderKey.objects.get(organization=org, provider="gemini").encrypted_key
    settings.ENCRYPTION_KEYS = [OLD]
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(ciphertext)
    settings.ENCRYPTION_KEYS = [NEW]
    assert crypto.decrypt(ciphertext) == "gm-org-secret-wxyz"


def test_the_command_re_encrypts_with_the_newest_key_once(stored_with_old_key, org, settings):
    settings.ENCRYPTION_KEYS = [NEW, OLD]

    assert "Re-encrypted 1 provider key(s) with the newest key; 0 already used it" in rotate()
    assert "Re-encrypted 0 provider key(s) with the newest key; 1 already used it" in rotate()

    # The old key can go: the stored key opens with the new one alone.
    settings.ENCRYPTION_KEYS = [NEW]
    assert chat_api_keys(organization=org)["openai"] == "sk-org-secret-abcd"
    stored = ProviderKey.objects.get(pk=stored_with_old_key.pk)
    assert stored.last4 == "abcd"
    assert stored.encrypted_key != stored_with_old_key.encrypted_key


def test_the_command_fails_on_a_key_no_configured_key_opens(stored_with_old_key, settings):
    settings.ENCRYPTION_KEYS = [NEW]

    with pytest.raises(CommandError, match="1 provider key"):
        rotate()
    assert ProviderKey.objects.get(pk=stored_with_old_key.pk).encrypted_key == stored_with_old_key.encrypted_key
