"""Message embeddings (pgvector), messages taken out of search on purpose, and the
embedding model search currently serves.

Dimensions differ per model (384 for the local MiniLM, 1536 for OpenAI, 768 for Gemini), so
`embedding` is an untyped `vector` column and every model gets its own HNSW cosine index on
the expression `(embedding::vector(<dims>))`, partial on `model = '<name>'`
(search.vector_index). Vectors of different models are never compared: every query
filters on one model (search.selectors).
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Func, Q
from pgvector.django import VectorField

from accounts.models import Organization
from raptorflow.tenancy import TenantQuerySet, TenantScope

# pgvector's HNSW index takes `vector` columns of at most 2,000 dimensions.
HNSW_MAX_DIMENSIONS = 2000


class MessageEmbeddingQuerySet(TenantQuerySet):
    def of_model(self, model: str):
        return self.filter(model=model)


class MessageEmbedding(models.Model):
    """One vector per (message, model). Re-embedding unchanged text is a no-op: the
    sha256 of the embedded text is kept and compared before any provider is called."""

    tenant_scope = TenantScope.OWNER

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Deleting a message (or its conversation) deletes its vectors.
    message = models.ForeignKey(
        "conversations.Message", on_delete=models.CASCADE, related_name="embeddings", db_index=False
    )
    # Copied from the message so scoping and conversation-scoped search need no join.
    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=100)
    dimensions = models.PositiveSmallIntegerField()
    # Untyped on purpose (dimensions differ per model); see the module docstring.
    embedding = VectorField()
    text_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MessageEmbeddingQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "model"], name="embedding_one_per_message_model"),
            models.CheckConstraint(
                condition=Q(dimensions__gte=1, dimensions__lte=HNSW_MAX_DIMENSIONS), name="embedding_dimensions_range"
            ),
            models.CheckConstraint(
                condition=Q(
                    dimensions=Func(F("embedding"), function="vector_dims", output_field=models.IntegerField())
                ),
                name="embedding_dimensions_match_vector",
            ),
        ]
        indexes = [
            # Exact search over one caller's rows, the row count that picks the plan, stats.
            models.Index(fields=["organization", "owner", "model"], name="embedding_owner_model"),
            # Conversation-scoped (exact) search.
            models.Index(fields=["conversation", "model"], name="embedding_conversation_model"),
        ]

    def __str__(self):
        return f"{self.model} vector of message {self.message_id}"


class SearchExclusionQuerySet(TenantQuerySet):
    pass


class SearchExclusion(models.Model):
    """A message taken out of search on purpose: its embedding was deleted through the
    API. Automatic embedding, backfill and reindex skip it; embedding it again on purpose
    (embed-and-store, batch-embed) removes this row."""

    tenant_scope = TenantScope.OWNER

    message = models.OneToOneField(
        "conversations.Message", on_delete=models.CASCADE, primary_key=True, related_name="search_exclusion"
    )
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SearchExclusionQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "owner"], name="exclusion_owner")]

    def __str__(self):
        return f"message {self.message_id} excluded from search"


class ActiveEmbeddingModel(models.Model):
    """The embedding model search serves: at most one row, written by
    `manage.py reindex_embeddings` when it switches. Without a row, the model configured by
    EMBEDDING_PROVIDER / EMBEDDING_MODEL is active (search.providers.active_spec)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=100)
    dimensions = models.PositiveSmallIntegerField()
    switched_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="active_embedding_model_singleton")]

    def __str__(self):
        return f"{self.provider}:{self.model} ({self.dimensions})"


class EmbeddingCoverage(Organization):
    """Admin-only view of organizations with their embedding counts and coverage (no
    vectors): see search.admin."""

    class Meta:
        proxy = True
        verbose_name = "embedding coverage"
        verbose_name_plural = "embedding coverage"


class TenantVectorIndexQuerySet(TenantQuerySet):
    pass


class TenantVectorIndex(models.Model):
    """A partial HNSW index over one tenant's vectors of one model in one embedded table,
    built CONCURRENTLY by a background job once the tenant holds more than
    SEARCH_TENANT_INDEX_MIN_ROWS of them (search.tenant_indexes). Its predicate is the
    search's own filter (model and scope columns), so the planner picks it for that
    tenant's searches and every row it yields is theirs. One row per index; the row
    exists from the moment a build is claimed (state `building`), which is how at most
    SEARCH_TENANT_INDEX_MAX indexes exist and two jobs never build the same one."""

    tenant_scope = TenantScope.ORGANIZATION

    class State(models.TextChoices):
        BUILDING = "building"
        READY = "ready"
        FAILED = "failed"

    id = models.BigAutoField(primary_key=True)
    # The PostgreSQL index, named from (table, model, scope): search.tenant_indexes.index_name.
    name = models.CharField(max_length=63, unique=True)
    table = models.CharField(max_length=63)
    model = models.CharField(max_length=100)
    dimensions = models.PositiveSmallIntegerField()
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # The owner for per-person tables (message vectors); null where the organization is the scope.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.BUILDING)
    # The tenant's rows when the index was built (and at each reconcile).
    rows = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)

    objects = TenantVectorIndexQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "state"], name="tenant_vector_index_org")]

    def __str__(self):
        return f"{self.name} ({self.model}, {self.state})"
