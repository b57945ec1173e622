"""The audit log in the admin: operators read the trail, nobody edits it. ViewOnlyAdmin is
the base of every admin page that only shows rows another part of RaptorFlow writes."""

from django.contrib import admin

from raptorflow.models import AuditLog


class ViewOnlyAdmin(admin.ModelAdmin):
    """Rows are listed and shown; none is added, changed or deleted here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditLog)
class AuditLogAdmin(ViewOnlyAdmin):
    list_display = ["created_at", "action", "actor_email", "organization_id", "target_type", "target_id", "ip_address"]
    list_filter = ["action"]
    search_fields = ["action", "actor_email", "target_id", "request_id"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
