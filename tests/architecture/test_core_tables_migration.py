"""The audit log and the rate-limit windows moved from `accounts` to the core app without
touching their tables: rows written before the move are read by the core models after it,
and the content type (operators' admin permissions) moves with them."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("accounts", "0003_workspace_exclusion"), ("raptorflow", None)]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def leaf_nodes():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_audit_and_rate_limit_rows_survive_the_move_to_core():
    migrate(BEFORE)
    try:
        before = MigrationExecutor(connection).loader.project_state(BEFORE[:1]).apps
        OldAuditLog = before.get_model("accounts", "AuditLog")
        OldWindow = before.get_model("accounts", "RateLimitWindow")
        ContentType = before.get_model("contenttypes", "ContentType")
        old = OldAuditLog.objects.create(action="auth.sign_in", actor_email="olivia@acme.test", details={"n": 1})
        expires = timezone.now() + timedelta(minutes=5)
        OldWindow.objects.create(key="user:olivia", count=7, expires_at=expires)
        ContentType.objects.get_or_create(app_label="accounts", model="auditlog")
    finally:
        migrate(leaf_nodes())

    from django.contrib.contenttypes.models import ContentType

    from raptorflow.models import AuditLog, RateLimitWindow

    entry = AuditLog.objects.get(pk=old.pk)
    assert (entry.action, entry.actor_email, entry.details) == ("auth.sign_in", "olivia@acme.test", {"n": 1})
    window = RateLimitWindow.objects.get(key="user:olivia")
    assert window.count == 7 and window.expires_at == expires
    assert AuditLog._meta.db_table == "accounts_auditlog"
    assert RateLimitWindow._meta.db_table == "accounts_ratelimitwindow"
    assert ContentType.objects.filter(app_label="raptorflow", model="auditlog").exists()
    assert not ContentType.objects.filter(app_label="accounts", model="auditlog").exists()
    ContentType.objects.clear_cache()
