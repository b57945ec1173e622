"""The knowledge base: documents, their chunks, and the chunks' vectors.

A Document belongs to its organization and its uploader (`owner`) and is `private` (the
uploader alone) or shared with the `organization` (every member reads, searches and uses
it). Chunks and their vectors copy organization, owner and visibility from their document,
so scoping (raptorflow.tenancy, TenantScope.SHARED) and search need no join; the services
change the copies in the same transaction as the document.

When the uploader's account goes, their shared documents stay with the organization (owner
set to NULL) and their private ones are deleted first (documents.services, through the
account_deleting hook): a check constraint holds that no private document is left without
an owner.

ChunkEmbedding mirrors search.MessageEmbedding: one vector per (chunk, model), an untyped
`vector` column, and one partial HNSW cosine index per model (search.vector_index, for the
table documents.search_plan.CHUNK_VECTORS describes), so a reindex to another model keeps
serving the old vectors until it switches.
"""

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import F, Func, Q
from pgvector.django import VectorField

from raptorflow.tenancy import SHARED_WITH_ORGANIZATION, TenantQuerySet, TenantScope
from search.models import HNSW_MAX_DIMENSIONS


class Visibility(models.TextChoices):
    PRIVATE = "private", "Private (only the uploader)"
    ORGANIZATION = SHARED_WITH_ORGANIZATION, "Organization (every member)"


class DocumentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class DocumentKind(models.TextChoices):
    PDF = "pdf", "PDF"
    DOCX = "docx", "Word (DOCX)"
    PPTX = "pptx", "PowerPoint (PPTX)"
    HTML = "html", "HTML"
    MARKDOWN = "markdown", "Markdown"
    TEXT = "text", "Plain text"
    CSV = "csv", "CSV"


class DocumentQuerySet(TenantQuerySet):
    pass


class Document(models.Model):
    tenant_scope = TenantScope.SHARED

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    # NULL once the uploader's account is deleted (shared documents stay; see the module docstring).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    title = models.CharField(max_length=300)
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE)
    filename = models.CharField(max_length=255, help_text="The name the file was uploaded with.")
    kind = models.CharField(max_length=16, choices=DocumentKind.choices)
    content_type = models.CharField(max_length=100)
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    # The path in the "documents" storage (settings.STORAGES); never derived from the filename.
    file = models.CharField(max_length=300)
    status = models.CharField(max_length=16, choices=DocumentStatus.choices, default=DocumentStatus.PENDING)
    error = models.TextField(blank=True, help_text="Why processing failed, in words a person understands.")
    error_code = models.CharField(max_length=32, blank=True)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    embedding_model = models.CharField(max_length=100, blank=True)
    # Bumped by every (re)processing request: a job acts only while it holds the latest one,
    # so a slow old job can never overwrite what a newer one wrote.
    processing_generation = models.PositiveIntegerField(default=1)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    processing_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DocumentQuerySet.as_manager()

    class Meta:
        constraints = [
            # The same bytes uploaded twice by one person are one document (the race's one winner).
            models.UniqueConstraint(fields=["organization", "owner", "sha256"], name="document_one_per_owner_bytes"),
            models.CheckConstraint(
                condition=Q(visibility=SHARED_WITH_ORGANIZATION) | Q(owner__isnull=False),
                name="document_private_has_owner",
            ),
            models.CheckConstraint(condition=Q(chunks_done__lte=F("chunks_total")), name="document_progress_bounded"),
        ]
        indexes = [
            models.Index(fields=["organization", "visibility", "created_at"], name="document_org_visibility"),
            models.Index(fields=["organization", "owner", "created_at"], name="document_org_owner"),
            models.Index(fields=["organization", "sha256"], name="document_org_sha256"),
        ]

    def __str__(self):
        return self.title


class DocumentChunkQuerySet(TenantQuerySet):
    pass


class DocumentChunk(models.Model):
    """A piece of a document's text that fits the embedding model's window, with where it
    came from (page or slide, heading, character offsets in the extracted text)."""

    tenant_scope = TenantScope.SHARED

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks", db_index=False)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    visibility = models.CharField(max_length=16, choices=Visibility.choices)
    index = models.PositiveIntegerField(help_text="Position in the document, from 0.")
    text = models.TextField()
    page = models.PositiveIntegerField(null=True, blank=True, help_text="Page (PDF) or slide (PPTX), from 1.")
    heading = models.CharField(max_length=500, blank=True)
    char_start = models.PositiveIntegerField()
    char_end = models.PositiveIntegerField()
    token_count = models.PositiveIntegerField()
    # English full text of heading and text, written with the chunk (hybrid search).
    search_vector = SearchVectorField(null=True)

    objects = DocumentChunkQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["document", "index"], name="chunk_one_per_document_index"),
            models.CheckConstraint(condition=Q(char_end__gte=F("char_start")), name="chunk_offsets_ordered"),
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="chunk_search_vector"),
            models.Index(fields=["organization", "visibility"], name="chunk_org_visibility"),
            models.Index(fields=["organization", "owner"], name="chunk_org_owner"),
        ]

    def __str__(self):
        return f"chunk {self.index} of {self.document_id}"


class ChunkEmbeddingQuerySet(TenantQuerySet):
    pass


class ChunkEmbedding(models.Model):
    tenant_scope = TenantScope.SHARED

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    chunk = models.ForeignKey(DocumentChunk, on_delete=models.CASCADE, related_name="embeddings", db_index=False)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="+", db_index=False)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    visibility = models.CharField(max_length=16, choices=Visibility.choices)
    model = models.CharField(max_length=100)
    dimensions = models.PositiveSmallIntegerField()
    # Untyped on purpose (dimensions differ per model), as in search.MessageEmbedding.
    embedding = VectorField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ChunkEmbeddingQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chunk", "model"], name="chunk_embedding_one_per_model"),
            models.CheckConstraint(
                condition=Q(dimensions__gte=1, dimensions__lte=HNSW_MAX_DIMENSIONS),
                name="chunk_embedding_dimensions_range",
            ),
            models.CheckConstraint(
                condition=Q(
                    dimensions=Func(F("embedding"), function="vector_dims", output_field=models.IntegerField())
                ),
                name="chunk_embedding_dimensions_match",
            ),
        ]
        indexes = [
            # Exact search over the rows one caller may read, and the count that picks the plan.
            models.Index(fields=["organization", "model", "visibility"], name="chunk_embedding_org_model"),
            models.Index(fields=["organization", "owner", "model"], name="chunk_embedding_owner_model"),
            models.Index(fields=["document", "model"], name="chunk_embedding_document"),
        ]

    def __str__(self):
        return f"{self.model} vector of chunk {self.chunk_id}"
