"""Deleting an organization cancels its live Razorpay subscription first, and is refused
(503, nothing deleted) while that subscription cannot be cancelled: the organization must
never disappear while Razorpay keeps charging for it."""

import json
import logging

import pytest
import requests

from accounts.models import Membership, Organization
from billing import services
from billing.models import Subscription, SubscriptionStatus
from raptorflow.errors import NotConfigured, UpstreamUnavailable
from raptorflow.models import AuditLog
from tests.billing_fixtures import cancel_url, razorpay_error, subscription_entity

pytestmark = pytest.mark.django_db


def test_deleting_the_organization_cancels_its_subscription_at_razorpay(
    owner_client, org, make_subscription, razorpay_keys, rzp
):
    make_subscription(status=SubscriptionStatus.ACTIVE)
    cancel = rzp.post(cancel_url(), json=subscription_entity(status="cancelled"))

    response = owner_client.delete("/api/organizations/current")

    assert response.status_code == 204
    assert cancel.call_count == 1
    assert json.loads(rzp.calls[0].request.body) == {"cancel_at_cycle_end": 0}
    assert not Organization.objects.filter(pk=org.pk).exists()
    assert not Subscription.objects.exists()
    assert AuditLog.objects.filter(action="billing.cancel", organization_id=org.pk).exists()


def test_a_razorpay_failure_refuses_the_deletion_and_deletes_nothing(
    owner_client, org, make_subscription, razorpay_keys, rzp, caplog
):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)
    cancel = rzp.post(cancel_url(), body=requests.exceptions.ConnectionError("unreachable"))

    with caplog.at_level(logging.ERROR, logger="billing.services"):
        response = owner_client.delete("/api/organizations/current")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert cancel.call_count == 1
    assert Organization.objects.filter(pk=org.pk).exists()
    assert Membership.objects.filter(organization=org).exists()
    subscription.refresh_from_db()
    assert subscription.status == SubscriptionStatus.ACTIVE
    assert not AuditLog.objects.filter(action__in=["organization.delete", "billing.cancel"]).exists()
    # The operator can find which subscription was left uncancelled.
    assert any("sub_Pro0000000001" in record.getMessage() for record in caplog.records)


def test_a_razorpay_server_error_refuses_the_deletion(owner_client, org, make_subscription, razorpay_keys, rzp):
    make_subscription(status=SubscriptionStatus.AUTHENTICATED)
    rzp.post(cancel_url(), status=500, json={"error": {"code": "SERVER_ERROR", "description": "oops"}})

    response = owner_client.delete("/api/organizations/current")

    assert response.status_code == 503
    assert Organization.objects.filter(pk=org.pk).exists()
    assert Subscription.objects.filter(organization=org, status=SubscriptionStatus.AUTHENTICATED).exists()
    assert not AuditLog.objects.filter(action="organization.delete").exists()


def test_a_razorpay_refusal_refuses_the_deletion(owner_client, org, make_subscription, razorpay_keys, rzp):
    make_subscription(status=SubscriptionStatus.ACTIVE)
    rzp.post(cancel_url(), status=400, json=razorpay_error("Subscription is not cancellable in active status"))

    response = owner_client.delete("/api/organizations/current")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_bad_response"
    assert Organization.objects.filter(pk=org.pk).exists()
    assert Subscription.objects.filter(organization=org, status=SubscriptionStatus.ACTIVE).exists()
    assert not AuditLog.objects.filter(action="organization.delete").exists()


def test_without_razorpay_keys_a_live_subscription_refuses_the_deletion(
    owner_client, org, make_subscription, no_razorpay_keys, rzp, caplog
):
    make_subscription(status=SubscriptionStatus.ACTIVE)

    with caplog.at_level(logging.ERROR, logger="billing.services"):
        response = owner_client.delete("/api/organizations/current")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_configured"
    assert len(rzp.calls) == 0
    assert Organization.objects.filter(pk=org.pk).exists()
    assert Subscription.objects.filter(organization=org, status=SubscriptionStatus.ACTIVE).exists()
    assert not AuditLog.objects.filter(action="organization.delete").exists()
    assert any("sub_Pro0000000001" in record.getMessage() for record in caplog.records)


def test_without_razorpay_keys_an_organization_without_subscription_is_deleted(
    owner_client, org, no_razorpay_keys, rzp
):
    response = owner_client.delete("/api/organizations/current")

    assert response.status_code == 204
    assert len(rzp.calls) == 0
    assert not Organization.objects.filter(pk=org.pk).exists()


def test_the_service_re_raises_what_stopped_the_cancellation(org, make_subscription, razorpay_keys, rzp, settings):
    make_subscription(status=SubscriptionStatus.PENDING)
    rzp.post(cancel_url(), body=requests.exceptions.ReadTimeout("slow"))

    with pytest.raises(UpstreamUnavailable):
        services.cancel_for_organization_deletion(org)

    settings.RAZORPAY_KEY_ID = ""
    with pytest.raises(NotConfigured):
        services.cancel_for_organization_deletion(org)


@pytest.mark.parametrize("status", ["cancelled", "completed", "expired"])
def test_a_finished_subscription_is_not_cancelled_again(org, make_subscription, razorpay_keys, rzp, status):
    make_subscription(status=status)

    services.cancel_for_organization_deletion(org)

    assert len(rzp.calls) == 0


@pytest.mark.parametrize("status", ["cancelled", "completed", "expired"])
def test_a_finished_subscription_does_not_need_razorpay_keys(
    owner_client, org, make_subscription, no_razorpay_keys, status
):
    make_subscription(status=status)

    assert owner_client.delete("/api/organizations/current").status_code == 204

    assert not Organization.objects.filter(pk=org.pk).exists()


def test_an_organization_on_free_needs_no_call(org, razorpay_keys, rzp):
    services.cancel_for_organization_deletion(org)

    assert len(rzp.calls) == 0
