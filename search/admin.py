"""Operators' view of embeddings: counts and coverage per organization and model, and the
embedding rows themselves without their vectors (a vector is 384-1536 floats of noise to a
person, and the content they encode is already visible on the message)."""

from django.contrib import admin
from django.db.models import BigIntegerField, Count, IntegerField, OuterRef, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.template.defaultfilters import filesizeformat

from conversations.models import Message
from search.models import (
    ActiveEmbeddingModel,
    EmbeddingCoverage,
    MessageEmbedding,
    SearchExclusion,
    TenantVectorIndex,
)
from search.providers import active_spec


class ReadOnlyAdmin(admin.ModelAdmin):
    """Embeddings are written by search.services only (API, jobs and commands)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def _count_per_org(queryset) -> Subquery:
    return Coalesce(
        Subquery(
            queryset.filter(organization=OuterRef("pk"))
            .order_by()
            .values("organization")
            .annotate(n=Count("pk"))
            .values("n")[:1],
            output_field=IntegerField(),
        ),
        0,
    )


@admin.register(EmbeddingCoverage)
class EmbeddingCoverageAdmin(ReadOnlyAdmin):
    list_display = ["name", "messages", "embedded", "coverage", "excluded", "vectors_by_model"]
    search_fields = ["name"]
    ordering = ["name"]

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        model = active_spec().model
        return (
            super()
            .get_queryset(request)
            .annotate(
                message_total=_count_per_org(Message.objects.all()),
                embedded_total=_count_per_org(MessageEmbedding.objects.filter(model=model)),
                excluded_total=_count_per_org(SearchExclusion.objects.all()),
            )
        )

    @admin.display(description="messages", ordering="message_total")
    def messages(self, organization):
        return organization.message_total

    @admin.display(description="embedded (active model)", ordering="embedded_total")
    def embedded(self, organization):
        return organization.embedded_total

    @admin.display(description="coverage")
    def coverage(self, organization):
        if not organization.message_total:
            return "-"
        return f"{100 * organization.embedded_total / organization.message_total:.1f}%"

    @admin.display(description="taken out of search", ordering="excluded_total")
    def excluded(self, organization):
        return organization.excluded_total

    @admin.display(description="vectors by model")
    def vectors_by_model(self, organization):
        rows = (
            MessageEmbedding.objects.filter(organization=organization)
            .values("model", "dimensions")
            .annotate(n=Count("pk"))
            .order_by("model")
        )
        return ", ".join(f"{row['model']} ({row['dimensions']}d): {row['n']}" for row in rows) or "-"


@admin.register(MessageEmbedding)
class MessageEmbeddingAdmin(ReadOnlyAdmin):
    list_display = ["message", "organization", "owner", "model", "dimensions", "created_at", "updated_at"]
    list_filter = ["model"]
    search_fields = ["message__id", "organization__name", "owner__email"]
    list_select_related = ["message", "organization", "owner"]
    # Never the vector itself.
    fields = [
        "id",
        "message",
        "conversation",
        "organization",
        "owner",
        "model",
        "dimensions",
        "text_sha256",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    ordering = ["-created_at"]
    show_full_result_count = False


@admin.register(SearchExclusion)
class SearchExclusionAdmin(ReadOnlyAdmin):
    list_display = ["message", "organization", "owner", "created_at"]
    fields = ["message", "organization", "owner", "created_at"]
    readonly_fields = fields
    list_select_related = ["message", "organization", "owner"]


@admin.register(ActiveEmbeddingModel)
class ActiveEmbeddingModelAdmin(ReadOnlyAdmin):
    """Switched by `manage.py reindex_embeddings` only: a switch needs every vector re-embedded."""

    list_display = ["provider", "model", "dimensions", "switched_at"]
    fields = list_display
    readonly_fields = fields

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TenantVectorIndex)
class TenantVectorIndexAdmin(ReadOnlyAdmin):
    """The partial HNSW indexes of large tenants (search.tenant_indexes), with their size on
    disk. Built and dropped by background jobs and `manage.py tenant_vector_indexes --sync`
    only: deleting a row here would leave its index behind."""

    list_display = ["name", "organization", "owner", "model", "state", "rows", "size", "created_at", "ready_at"]
    list_filter = ["state", "model"]
    search_fields = ["name", "organization__name", "owner__email"]
    list_select_related = ["organization", "owner"]
    fields = [
        "name",
        "table",
        "model",
        "dimensions",
        "organization",
        "owner",
        "state",
        "rows",
        "error",
        "created_at",
        "ready_at",
    ]
    readonly_fields = fields
    ordering = ["-rows"]

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        # NULL while an index does not exist (building, failed).
        # The table name is our own constant, not input.
        table = TenantVectorIndex._meta.db_table
        size = RawSQL(f"pg_relation_size(to_regclass({table}.name))", (), BigIntegerField())  # noqa: S611
        return super().get_queryset(request).annotate(size_bytes=size)

    @admin.display(description="size", ordering="size_bytes")
    def size(self, index):
        return "-" if index.size_bytes is None else filesizeformat(index.size_bytes)
