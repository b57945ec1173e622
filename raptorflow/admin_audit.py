"""The Django admin, audited and rate-limited.

AuditedAdminSite is the project's default admin site (INSTALLED_APPS names
AuditedAdminConfig instead of django.contrib.admin). Every ModelAdmin registered on it —
ours and third-party ones (auth, allauth, token blacklist) — gets AuditedAdminMixin, so each
add, change and delete the admin writes to its own LogEntry is mirrored into the audit log
with the operator, IP and request id. Its login view is limited per IP and per account
(raptorflow.throttling) and records sign-ins and (rate-limited) failed attempts.

The mirror keeps only the target's type and id and the admin's change message (the names
of changed fields), never an object's text, which may be a message's content.
"""

from django.conf import settings
from django.contrib.admin import AdminSite, ModelAdmin
from django.contrib.admin.apps import AdminConfig
from django.http import JsonResponse

# Imported while apps load (INSTALLED_APPS names AuditedAdminConfig): anything that touches
# models or DRF's settings is imported inside the functions below.


def _organization_id_of(obj):
    # An organization is its own tenant; any other tenant row names its organization.
    if obj._meta.label_lower == settings.TENANT_MODEL.lower():
        return obj.pk
    return getattr(obj, "organization_id", None)


def _mirror(action: str, request, obj, message="") -> None:
    from raptorflow import audit

    audit.record(
        action,
        actor=request.user,
        organization=_organization_id_of(obj),
        target=obj,
        model=obj._meta.label_lower,
        change=message if isinstance(message, (str, list)) else "",
    )


class AuditedAdminMixin:
    """Mirrors the admin's own log of additions, changes and deletions into the audit log."""

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        _mirror("admin.add", request, obj, message)
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        _mirror("admin.change", request, obj, message)
        return entry

    def log_deletions(self, request, queryset):
        # Called before the deletion, with the objects still in the database.
        objects = list(queryset)
        entries = super().log_deletions(request, objects)
        for obj in objects:
            _mirror("admin.delete", request, obj)
        return entries


class ReadOnlyAdminMixin:
    """For the audit log's own admin: operators can read the trail, never edit it."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AuditedAdminSite(AdminSite):
    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or ModelAdmin
        if not issubclass(admin_class, AuditedAdminMixin):
            admin_class = type(
                admin_class.__name__, (AuditedAdminMixin, admin_class), {"__module__": admin_class.__module__}
            )
        return super().register(model_or_iterable, admin_class, **options)

    def login(self, request, extra_context=None):
        if request.method != "POST":
            return super().login(request, extra_context)
        from rest_framework.exceptions import Throttled

        from raptorflow.auth_audit import record_rejected_credential
        from raptorflow.errors import error_body
        from raptorflow.throttling import check_admin_login

        try:
            check_admin_login(request)
        except Throttled as exc:
            body = error_body("rate_limited", "Too many sign-in attempts; try again later.")
            response = JsonResponse(body, status=429)
            response["Retry-After"] = str(int(exc.wait + 0.999))
            return response
        response = super().login(request, extra_context)
        if response.status_code == 302 and request.user.is_authenticated:
            from raptorflow import audit

            audit.record("admin.sign_in", actor=request.user)
        else:
            record_rejected_credential(request, "admin.sign_in_failed")
        return response


class AuditedAdminConfig(AdminConfig):
    default_site = "raptorflow.admin_audit.AuditedAdminSite"
