"""The audit trail of what this issue adds: failed token use (rate-limited writes) and
every action taken in the Django admin, including third-party ModelAdmins."""

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings

from accounts.models import Organization, User
from raptorflow.admin_audit import AuditedAdminMixin
from raptorflow.models import AuditLog


def test_failed_token_use_is_audited_with_ip_and_request_id(anon_client, db):
    response = anon_client.get(
        "/api/auth/me", HTTP_AUTHORIZATION="Bearer forged.token.value", REMOTE_ADDR="203.0.113.9",
        HTTP_X_REQUEST_ID="req-bad-token",
    )
    assert response.status_code == 401

    entry = AuditLog.objects.get(action="auth.token_rejected")
    assert entry.ip_address == "203.0.113.9"
    assert entry.request_id == "req-bad-token"
    assert entry.details == {"code": "token_not_valid", "path": "/api/auth/me", "method": "GET"}
    assert "forged" not in str(entry.details)


def test_the_recorded_ip_is_the_one_the_trusted_proxy_saw_not_the_clients_claim(anon_client, db, settings):
    # Behind one proxy (Cloud Run): it appends the address it saw to what the client sent.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    anon_client.get("/api/auth/me", HTTP_AUTHORIZATION="Bearer nope", REMOTE_ADDR="10.0.0.1",
                    HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.50")
    assert AuditLog.objects.get(action="auth.token_rejected").ip_address == "203.0.113.50"


def test_without_a_trusted_proxy_a_forwarded_for_header_is_ignored(anon_client, db):
    anon_client.get("/api/auth/me", HTTP_AUTHORIZATION="Bearer nope", REMOTE_ADDR="203.0.113.51",
                    HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert AuditLog.objects.get(action="auth.token_rejected").ip_address == "203.0.113.51"


def test_a_flood_of_bad_tokens_writes_one_entry_per_ip_per_window(anon_client, db):
    for _ in range(25):
        anon_client.get("/api/auth/me", HTTP_AUTHORIZATION="Bearer nope", REMOTE_ADDR="203.0.113.10")
    anon_client.post("/api/auth/refresh", {"refresh": "nope"}, format="json", REMOTE_ADDR="203.0.113.10")
    anon_client.get("/api/auth/me", HTTP_AUTHORIZATION="Bearer nope", REMOTE_ADDR="203.0.113.11")

    entries = AuditLog.objects.filter(action="auth.token_rejected")
    assert sorted(entries.values_list("ip_address", flat=True)) == ["203.0.113.10", "203.0.113.11"]


def test_a_bad_refresh_token_is_audited(anon_client, db):
    response = anon_client.post("/api/auth/refresh", {"refresh": "not-a-refresh-token"}, format="json",
                                REMOTE_ADDR="203.0.113.12")
    assert response.status_code == 401
    entry = AuditLog.objects.get(action="auth.token_rejected")
    assert entry.details["path"] == "/api/auth/refresh"


def test_a_removed_members_token_is_audited(teammate_client, teammate, org, db):
    teammate.memberships.filter(organization=org).delete()
    response = teammate_client.get("/api/auth/me", REMOTE_ADDR="203.0.113.13")
    assert response.status_code == 401
    assert AuditLog.objects.get(action="auth.token_rejected").details["code"] == "user_inactive"


def test_a_missing_token_is_not_a_failed_token_use(anon_client, db):
    assert anon_client.get("/api/auth/me").status_code == 401
    assert not AuditLog.objects.filter(action="auth.token_rejected").exists()


# --- admin actions -----------------------------------------------------------------------


@pytest.fixture
def operator(db):
    return User.objects.create_superuser("ops@raptorflow.test", password="correct horse battery")


@pytest.fixture
def admin_client(client, operator):
    client.force_login(operator)
    return client


def test_every_registered_model_admin_is_audited():
    from django.contrib import admin

    unaudited = [model._meta.label for model, model_admin in admin.site._registry.items()
                 if not isinstance(model_admin, AuditedAdminMixin)]
    assert unaudited == []


def test_admin_change_is_mirrored_into_the_audit_log(admin_client, operator, org):
    response = admin_client.post(
        f"/admin/accounts/organization/{org.pk}/change/",
        {
            "name": "Acme Renamed",
            "is_personal": "on",
            "settings": "{}",
            **_empty_inline_forms("memberships", "invitations", "domain_claims"),
        },
        REMOTE_ADDR="192.0.2.20",
    )
    assert response.status_code == 302, response.content[:2000]
    org.refresh_from_db()
    assert org.name == "Acme Renamed"

    entry = AuditLog.objects.get(action="admin.change")
    assert entry.actor_id == operator.pk
    assert entry.actor_email == "ops@raptorflow.test"
    assert entry.organization_id == org.pk
    assert (entry.target_type, entry.target_id) == ("Organization", str(org.pk))
    assert entry.ip_address == "192.0.2.20"
    assert entry.details["model"] == "accounts.organization"
    # The admin's change message: names of the changed fields, never their values.
    assert entry.details["change"][0]["changed"]["fields"][0] == "Name"
    assert "Acme Renamed" not in str(entry.details)


def test_admin_addition_and_deletion_in_a_third_party_admin_are_audited(admin_client, operator):
    response = admin_client.post("/admin/auth/group/add/", {"name": "support", "permissions": []})
    assert response.status_code == 302
    group = Group.objects.get(name="support")

    response = admin_client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Group.objects.filter(pk=group.pk).exists()

    actions = list(AuditLog.objects.filter(target_type="Group").order_by("id").values_list("action", "target_id"))
    assert actions == [("admin.add", str(group.pk)), ("admin.delete", str(group.pk))]
    assert set(AuditLog.objects.filter(target_type="Group").values_list("actor_id", flat=True)) == {operator.pk}


def test_admin_bulk_delete_action_audits_each_object(admin_client):
    groups = [Group.objects.create(name=f"team-{n}") for n in range(3)]
    response = admin_client.post(
        "/admin/auth/group/",
        {"action": "delete_selected", "_selected_action": [g.pk for g in groups], "post": "yes"},
    )
    assert response.status_code == 302
    deleted = set(AuditLog.objects.filter(action="admin.delete").values_list("target_id", flat=True))
    assert deleted == {str(g.pk) for g in groups}


def test_a_failed_admin_login_is_audited_once_per_window(client, operator):
    with override_settings(RATE_LIMITS={"admin_login_ip": "100/hour", "admin_login_account": "100/hour"}):
        for _ in range(3):
            response = client.post("/admin/login/", {"username": "ops@raptorflow.test", "password": "wrong"},
                                   REMOTE_ADDR="192.0.2.30")
            assert response.status_code == 200
    entry = AuditLog.objects.get(action="admin.sign_in_failed")
    assert entry.ip_address == "192.0.2.30"
    assert "wrong" not in str(entry.details)


def test_the_audit_log_is_read_only_in_the_admin(admin_client, anon_client, db):
    anon_client.get("/api/auth/me", HTTP_AUTHORIZATION="Bearer nope", REMOTE_ADDR="203.0.113.40")
    entry = AuditLog.objects.get(action="auth.token_rejected")
    assert admin_client.get("/admin/raptorflow/auditlog/").status_code == 200
    assert admin_client.get("/admin/raptorflow/auditlog/add/").status_code == 403
    assert admin_client.post(f"/admin/raptorflow/auditlog/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def _empty_inline_forms(*prefixes: str) -> dict:
    data = {}
    for prefix in prefixes:
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0",
                     f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"})
    return data


def test_organization_of_an_admin_target_is_recorded(admin_client, org, teammate):
    membership = teammate.memberships.get(organization=org)
    response = admin_client.post(
        f"/admin/accounts/membership/{membership.pk}/change/",
        {"user": str(teammate.pk), "organization": str(org.pk), "role": "admin"},
    )
    assert response.status_code == 302, response.content[:2000]
    membership.refresh_from_db()
    assert membership.role == "admin"
    entry = AuditLog.objects.get(action="admin.change", target_type="Membership")
    assert entry.organization_id == org.pk
    assert Organization.objects.filter(pk=entry.organization_id).exists()
