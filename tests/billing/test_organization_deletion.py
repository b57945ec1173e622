"""Deleting an organization cancels its live Razorpay subscription first (best effort: a
Razorpay failure is logged and does not keep the organization alive)."""

import json
import logging

import pytest
import requests

from accounts.models import AuditLog, Organization
from billing import services
from billing.models import Subscription, SubscriptionStatus
from tests.billing.conftest import RAZORPAY_API, subscription_entity

pytestmark = pytest.mark.django_db

CANCEL_URL = f"{RAZORPAY_API}/subscriptions/sub_Pro0000000001/cancel"


def test_deleting_the_organization_cancels_its_subscription_at_razorpay(
    owner_client, org, make_subscription, razorpay_keys, rzp
):
    make_subscription(status=SubscriptionStatus.ACTIVE)
    cancel = rzp.post(CANCEL_URL, json=subscription_entity(status="cancelled"))

    response = owner_client.delete("/api/organizations/current")

    assert response.status_code == 204
    assert cancel.call_count == 1
    assert json.loads(rzp.calls[0].request.body) == {"cancel_at_cycle_end": 0}
    assert not Organization.objects.filter(pk=org.pk).exists()
    assert not Subscription.objects.exists()
    assert AuditLog.objects.filter(action="billing.cancel", organization_id=org.pk).exists()


def test_a_razorpay_failure_is_logged_and_does_not_block_the_deletion(
    owner_client, org, make_subscription, razorpay_keys, rzp, caplog
):
    make_subscription(status=SubscriptionStatus.ACTIVE)
    rzp.post(CANCEL_URL, body=requests.exceptions.ConnectionError("unreachable"))

    with caplog.at_level(logging.ERROR, logger="billing.services"):
        response = owner_client.delete("/api/organizations/current")

    assert response.status_code == 204
    assert not Organization.objects.filter(pk=org.pk).exists()
    assert any("sub_Pro0000000001" in record.getMessage() for record in caplog.records)


def test_without_razorpay_keys_the_deletion_still_happens_and_is_logged(
    owner_client, org, make_subscription, no_razorpay_keys, rzp, caplog
):
    make_subscription(status=SubscriptionStatus.ACTIVE)

    with caplog.at_level(logging.ERROR, logger="billing.services"):
        assert owner_client.delete("/api/organizations/current").status_code == 204

    assert len(rzp.calls) == 0
    assert any("sub_Pro0000000001" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("status", ["cancelled", "completed", "expired"])
def test_a_finished_subscription_is_not_cancelled_again(org, make_subscription, razorpay_keys, rzp, status):
    make_subscription(status=status)

    services.cancel_for_organization_deletion(org)

    assert len(rzp.calls) == 0


def test_an_organization_on_free_needs_no_call(org, razorpay_keys, rzp):
    services.cancel_for_organization_deletion(org)

    assert len(rzp.calls) == 0
