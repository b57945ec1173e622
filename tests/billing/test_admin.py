"""The admin: plans editable, subscriptions and usage listed, webhook events read-only."""

import pytest
from django.test import Client

from accounts.models import User
from billing.models import Plan, WebhookEvent, WebhookOutcome

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    user = User.objects.create_superuser(email="root@raptorflow.test", password="x-very-long-password-1")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def webhook_event():
    return WebhookEvent.objects.create(
        event_id="evt_admin",
        event="subscription.activated",
        created_at="2026-11-01T00:00:00Z",
        razorpay_subscription_id="sub_Pro0000000001",
        outcome=WebhookOutcome.APPLIED,
        payload={"event": "subscription.activated", "payload": {}},
    )


@pytest.mark.parametrize("model", ["plan", "subscription", "usage", "webhookevent"])
def test_each_billing_model_is_listed(staff_client, make_subscription, webhook_event, model):
    make_subscription()

    response = staff_client.get(f"/admin/billing/{model}/")

    assert response.status_code == 200


def test_a_plan_is_edited_in_the_admin(staff_client, pro_plan):
    response = staff_client.post(
        f"/admin/billing/plan/{pro_plan.pk}/change/",
        {
            "code": "pro",
            "name": "Pro",
            "description": "",
            "is_active": "on",
            "price_paise": "149900",
            "currency": "INR",
            "razorpay_plan_id": "plan_New00000001",
            "message_quota": "20000",
            "reply_token_quota": "3000000",
            "embedding_quota": "40000",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    pro_plan.refresh_from_db()
    assert (pro_plan.price_paise, pro_plan.message_quota, pro_plan.razorpay_plan_id) == (
        149_900,
        20_000,
        "plan_New00000001",
    )


def test_a_paid_plan_cannot_leave_its_quotas_empty(staff_client, pro_plan):
    response = staff_client.post(
        f"/admin/billing/plan/{pro_plan.pk}/change/",
        {"code": "pro", "name": "Pro", "price_paise": "99900", "currency": "INR", "message_quota": ""},
    )

    assert response.status_code == 200  # the form again, with the error
    pro_plan.refresh_from_db()
    assert pro_plan.message_quota == 10_000
    assert Plan.objects.get(code="pro").reply_token_quota == 2_000_000


def test_a_webhook_events_payload_is_shown_but_not_editable(staff_client, webhook_event):
    page = staff_client.get(f"/admin/billing/webhookevent/{webhook_event.pk}/change/")
    posted = staff_client.post(
        f"/admin/billing/webhookevent/{webhook_event.pk}/change/", {"event": "forged", "payload": "{}"}
    )

    assert page.status_code == 200
    assert "subscription.activated" in page.content.decode()
    assert 'name="payload"' not in page.content.decode()
    assert posted.status_code == 403
    webhook_event.refresh_from_db()
    assert webhook_event.event == "subscription.activated"
    assert staff_client.get("/admin/billing/webhookevent/add/").status_code == 403
