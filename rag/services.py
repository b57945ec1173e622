"""Writes of the rag app: organization provider keys and the context cache."""

from django.db import transaction

from accounts.models import Membership
from accounts.services.roles import require_manager
from rag import crypto
from rag.models import ContextCache, ProviderKey
from raptorflow.audit import record


@transaction.atomic
def provider_key_set(*, actor: Membership, provider: str, api_key: str) -> tuple[ProviderKey, bool]:
    """Stores (or replaces) the organization's key for `provider`; True when it is new.
    Owners and admins only."""
    require_manager(actor)
    organization = actor.organization
    stored, created = ProviderKey.objects.select_for_update().update_or_create(
        organization=organization,
        provider=provider,
        defaults={"encrypted_key": crypto.encrypt(api_key), "last4": api_key[-4:], "updated_by": actor.user},
    )
    record(
        "provider_key.set", actor=actor.user, organization=organization, target=stored, provider=provider
    )
    return stored, created


@transaction.atomic
def provider_key_delete(*, actor: Membership, provider_key: ProviderKey) -> None:
    """Owners and admins only."""
    require_manager(actor)
    record(
        "provider_key.delete",
        actor=actor.user,
        organization=provider_key.organization,
        target=provider_key,
        provider=provider_key.provider,
    )
    provider_key.delete()


@transaction.atomic
def context_cache_store(*, conversation, state: str, key: str, entries: list[dict]) -> None:
    """Also drops the entries of earlier states of the conversation: made before its last
    change, they can never be hit again."""
    ContextCache.objects.filter(conversation=conversation).exclude(state=state).delete()
    # An upsert, so two requests caching the same context at once do not collide.
    ContextCache.objects.bulk_create(
        [
            ContextCache(
                organization_id=conversation.organization_id,
                owner_id=conversation.owner_id,
                conversation=conversation,
                state=state,
                key=key,
                entries=entries,
            )
        ],
        update_conflicts=True,
        unique_fields=["conversation", "key"],
        update_fields=["entries", "state"],
    )
