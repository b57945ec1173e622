"""Reading billing: the plan catalogue (from the data migration), the organization's plan
and subscription. Reads work without Razorpay keys."""

import pytest
from django.test import override_settings

from billing.models import Plan, SubscriptionStatus

pytestmark = pytest.mark.django_db


@override_settings(FREE_PLAN_MESSAGES=100, FREE_PLAN_REPLY_TOKENS=20_000, FREE_PLAN_EMBEDDINGS=300)
def test_plans_are_listed_cheapest_first_with_their_quotas(teammate_client, no_razorpay_keys):
    response = teammate_client.get("/api/billing/plans")

    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None and body["previous"] is None
    assert [plan["code"] for plan in body["results"]] == ["free", "pro", "team"]
    free, pro, _ = body["results"]
    assert free == {
        "code": "free",
        "name": "Free",
        "description": "For trying RaptorFlow out.",
        "price_paise": 0,
        "currency": "INR",
        "quotas": {"messages": 100, "reply_tokens": 20_000, "embeddings": 300},
    }
    assert pro["price_paise"] == 99_900
    assert pro["quotas"] == {"messages": 10_000, "reply_tokens": 2_000_000, "embeddings": 20_000}


def test_inactive_plans_are_not_listed(owner_client):
    Plan.objects.filter(code="team").update(is_active=False)

    codes = [plan["code"] for plan in owner_client.get("/api/billing/plans").json()["results"]]

    assert "team" not in codes


def test_plans_are_paginated(owner_client):
    first = owner_client.get("/api/billing/plans?page_size=2").json()

    assert len(first["results"]) == 2
    assert first["next"] is not None
    second = owner_client.get(first["next"]).json()
    assert [plan["code"] for plan in first["results"] + second["results"]] == ["free", "pro", "team"]


def test_an_out_of_range_page_size_is_400(owner_client):
    assert owner_client.get("/api/billing/plans?page_size=101").status_code == 400


def test_a_new_organization_is_on_free_without_a_subscription(owner_client, no_razorpay_keys):
    response = owner_client.get("/api/billing/subscription")

    assert response.status_code == 200
    body = response.json()
    assert body["plan"]["code"] == "free"
    assert body["subscription"] is None
    assert body["period_start"].endswith("01T00:00:00Z")


def test_the_subscription_shows_plan_status_and_period(teammate_client, make_subscription, no_razorpay_keys):
    subscription = make_subscription(status=SubscriptionStatus.ACTIVE)

    body = teammate_client.get("/api/billing/subscription").json()

    assert body["plan"]["code"] == "pro"
    assert body["subscription"]["id"] == str(subscription.id)
    assert body["subscription"]["razorpay_subscription_id"] == "sub_Pro0000000001"
    assert body["subscription"]["status"] == "active"
    assert body["subscription"]["plan"] == "pro"


def test_an_unpaid_checkout_shows_but_does_not_change_the_plan(owner_client, make_subscription):
    make_subscription(status=SubscriptionStatus.CREATED)

    body = owner_client.get("/api/billing/subscription").json()

    assert body["plan"]["code"] == "free"
    assert body["subscription"]["status"] == "created"


def test_outsider_does_not_see_another_organizations_subscription(outsider_client, make_subscription):
    make_subscription(status=SubscriptionStatus.ACTIVE)

    body = outsider_client.get("/api/billing/subscription").json()

    assert body["plan"]["code"] == "free"
    assert body["subscription"] is None


def test_billing_reads_need_a_token(anon_client):
    for path in ("/api/billing/plans", "/api/billing/subscription", "/api/billing/usage"):
        assert anon_client.get(path).status_code == 401


def test_billing_paths_have_no_trailing_slash(owner_client):
    assert owner_client.get("/api/billing/plans/").status_code == 404


def test_billing_endpoints_are_in_the_schema(anon_client):
    response = anon_client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("plans", "subscription", "subscribe", "cancel", "usage", "webhook"):
        assert f"/api/billing/{path}" in paths
