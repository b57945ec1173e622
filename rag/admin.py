from django.contrib import admin

from rag.models import ContextCache, ProviderKey


@admin.register(ProviderKey)
class ProviderKeyAdmin(admin.ModelAdmin):
    # The ciphertext is not shown either: operators never need it.
    list_display = ["organization", "provider", "last4", "updated_by", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["organization__name"]
    fields = ["organization", "provider", "last4", "updated_by", "created_at", "updated_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False


@admin.register(ContextCache)
class ContextCacheAdmin(admin.ModelAdmin):
    list_display = ["conversation", "state", "created_at"]
    fields = ["organization", "owner", "conversation", "state", "key", "entries", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False
