"""Fixtures of the billing tests: an admin of the owner's organization and signed webhook
deliveries. Razorpay keys, the paid plans, subscription rows and Razorpay's mocked HTTP API
come from tests/billing_fixtures.py (loaded for the whole suite by tests/conftest.py)."""

import hashlib
import hmac
import json
import time

import pytest

from accounts.models import Membership, Role
from accounts.services import user_create_with_personal_organization
from tests.billing_fixtures import WEBHOOK_SECRET
from tests.conftest import make_client


@pytest.fixture
def admin(org):
    """An admin of the owner's organization."""
    user = user_create_with_personal_organization(email="ada@acme.test", name="Ada Admin")
    Membership.objects.create(organization=org, user=user, role=Role.ADMIN)
    return user


@pytest.fixture
def admin_client(admin, org):
    return make_client(admin, org)


def event_body(event: str, *, created_at: int, subscription: dict | None = None, payment: dict | None = None) -> bytes:
    payload = {}
    if subscription is not None:
        payload["subscription"] = {"entity": subscription}
    if payment is not None:
        payload["payment"] = {"entity": payment}
    contains = list(payload)
    return json.dumps(
        {
            "entity": "event",
            "account_id": "acc_BFQ7uQEaa7j2z7",
            "event": event,
            "contains": contains,
            "payload": payload,
            "created_at": created_at,
        }
    ).encode()


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def deliver(anon_client, razorpay_keys):
    """Posts a webhook the way Razorpay does: raw JSON, signed, with an event id."""
    counter = iter(range(1, 10_000))

    def post(body: bytes, *, signature: str | None = None, event_id: str | None = None):
        headers = {"X-Razorpay-Signature": sign(body) if signature is None else signature}
        headers["X-Razorpay-Event-Id"] = event_id or f"evt_{time.monotonic_ns()}_{next(counter)}"
        return anon_client.generic(
            "POST", "/api/billing/webhook", body, content_type="application/json", headers=headers
        )

    return post
