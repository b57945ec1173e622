"""Reads of the rag app: provider keys (never decrypted for display) and the keys a call uses."""

import logging

from django.db.models import QuerySet

from rag import crypto
from rag.chat_providers import server_api_keys
from rag.models import ProviderKey
from raptorflow.tenancy import scoped

logger = logging.getLogger(__name__)


def provider_key_list(*, organization) -> QuerySet[ProviderKey]:
    return scoped(ProviderKey, user=None, organization=organization).order_by("provider")


def chat_api_keys(*, organization) -> dict[str, str]:
    """The key for each provider for this organization's calls: its own when it stored one,
    else the server's."""
    keys = server_api_keys()
    for stored in scoped(ProviderKey, user=None, organization=organization):
        try:
            keys[stored.provider] = crypto.decrypt(stored.encrypted_key)
        except crypto.DecryptionFailed:
            # ENCRYPTION_KEY changed: the stored key is unusable until the organization sets it again.
            logger.error("Provider key %s of organization %s cannot be decrypted", stored.provider, organization.pk)
    return keys
