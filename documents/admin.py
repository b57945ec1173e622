"""Operators' view of the knowledge base: documents with status, chunk count, size and
failures, and a reprocess action. Rows change only through documents.services."""

from django.contrib import admin, messages

from documents import services
from documents.models import Document


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "organization", "owner", "visibility", "kind", "status", "chunks_total", "size_bytes",
                    "error_code", "created_at"]
    list_filter = ["status", "kind", "visibility", "error_code"]
    search_fields = ["title", "filename", "organization__name", "owner__email", "sha256"]
    ordering = ["-created_at"]
    list_select_related = ["organization", "owner"]
    readonly_fields = [field.name for field in Document._meta.fields]
    actions = ["reprocess"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    # Deleting here deletes the files too (documents.services), never only the rows.
    def delete_model(self, request, obj):
        services.unscoped_documents_delete([obj])

    def delete_queryset(self, request, queryset):
        services.unscoped_documents_delete(list(queryset))

    @admin.action(description="Reprocess the selected documents (read and embed them again)")
    def reprocess(self, request, queryset):
        count = 0
        for document in queryset:
            services.unscoped_document_reprocess(document=document)
            count += 1
        self.message_user(request, f"{count} document(s) queued for processing.", messages.SUCCESS)
