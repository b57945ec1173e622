"""Organizations' own chat provider keys, and the RAG context cache."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from raptorflow.tenancy import TenantQuerySet, TenantScope


class ChatProviderName(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    GEMINI = "gemini", "Gemini"
    OPENROUTER = "openrouter", "OpenRouter"


class ProviderKeyQuerySet(TenantQuerySet):
    pass


class ProviderKey(models.Model):
    """An organization's own API key for a chat provider; it serves that organization's
    replies instead of the server's key. Only the ciphertext (rag.crypto) and the last four
    characters (for display) are stored; the key itself is never returned by the API."""

    tenant_scope = TenantScope.ORGANIZATION

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="provider_keys")
    provider = models.CharField(max_length=16, choices=ChatProviderName.choices)
    encrypted_key = models.TextField()
    last4 = models.CharField(max_length=4)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProviderKeyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "provider"], name="provider_key_unique_per_org"),
            models.CheckConstraint(
                condition=Q(provider__in=[p.value for p in ChatProviderName]), name="provider_key_provider_valid"
            ),
        ]

    def __str__(self):
        return f"{self.get_provider_display()} key …{self.last4} of {self.organization_id}"


class ContextCacheQuerySet(TenantQuerySet):
    pass


class ContextCache(models.Model):
    """Retrieved context (message ids and scores) for a (conversation, query). `state` is the
    conversation's state (message count, last change) and `key` hashes it with the query and
    the retrieval settings, so any change of the conversation makes old entries unreachable;
    they are deleted on the next write for that conversation."""

    tenant_scope = TenantScope.OWNER

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey("conversations.Conversation", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=64)
    key = models.CharField(max_length=64)
    # [{"message_id", "score", "similarity", "source"}] in ranking order.
    entries = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ContextCacheQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["conversation", "key"], name="context_cache_unique_key")]

    def __str__(self):
        return f"context {self.key[:8]} of {self.conversation_id}"
