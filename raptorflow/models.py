"""Tables of the core app: the audit log and the rate-limit windows.

Both were created by the `accounts` app and moved here without touching the database: they
keep their tables (`accounts_auditlog`, `accounts_ratelimitwindow`) and their rows; the
move was a change of Django's model state only (accounts 0004, raptorflow 0001). Neither
has a foreign key: the audit trail copies ids so it outlives the users and organizations
it mentions, and a rate-limit window is keyed by a string.
"""

from django.db import models
from django.utils import timezone

from raptorflow.tenancy import TenantQuerySet, TenantScope


class AuditLogQuerySet(TenantQuerySet):
    def for_org(self, organization):
        return self.filter(organization_id=organization.pk)


class AuditLog(models.Model):
    """Security-relevant actions. Ids are copied, not foreign keys, so the trail outlives
    the users and organizations it mentions."""

    tenant_scope = TenantScope.ORGANIZATION

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    actor_id = models.UUIDField(null=True, blank=True)
    actor_email = models.CharField(max_length=254, blank=True)
    organization_id = models.UUIDField(null=True, blank=True, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        db_table = "accounts_auditlog"
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_email or '-'}"


class RateLimitWindow(models.Model):
    """A fixed rate-limit window, counted in PostgreSQL when no Redis is configured: one
    upsert per request (raptorflow.throttling) instead of the database cache's many
    statements. Expired windows are reused in place."""

    key = models.CharField(max_length=200, primary_key=True)
    count = models.PositiveIntegerField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "accounts_ratelimitwindow"

    def __str__(self):
        return f"{self.key}: {self.count} until {self.expires_at:%H:%M:%S}"
