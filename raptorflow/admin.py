"""The audit log in the admin: operators read the trail, nobody edits it."""

from django.contrib import admin

from raptorflow.models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "actor_email", "organization_id", "target_type", "target_id", "ip_address"]
    list_filter = ["action"]
    search_fields = ["action", "actor_email", "target_id", "request_id"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
