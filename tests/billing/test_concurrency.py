"""Concurrent reservations on real transactions, one database connection per thread: at
quota − 1, exactly one of several simultaneous requests gets the last message."""

import pytest
from django.db import transaction
from django.test import override_settings

from billing import quotas, selectors
from billing.models import Usage
from raptorflow.errors import PaymentRequired
from tests.concurrency import run_together

THREADS = 8


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("existing_row", [True, False], ids=["row-exists", "first-of-period"])
def test_at_quota_minus_one_exactly_one_concurrent_reservation_succeeds(org, existing_row):
    limit = THREADS if existing_row else 1
    current = selectors.entitlement(org)
    if existing_row:
        Usage.objects.create(
            organization=org, period_start=current.period_start, period_end=current.period_end, messages=limit - 1
        )

    def reserve_in_a_transaction():
        with transaction.atomic():
            quotas.reserve_messages(org)
        return "reserved"

    with override_settings(FREE_PLAN_MESSAGES=limit):
        outcomes = run_together(*[reserve_in_a_transaction] * THREADS)

    assert outcomes.count("reserved") == 1, outcomes
    refused = [outcome for outcome in outcomes if outcome != "reserved"]
    assert len(refused) == THREADS - 1
    assert all(isinstance(outcome, PaymentRequired) for outcome in refused), refused
    assert Usage.objects.get(organization=org, period_start=current.period_start).messages == limit
    assert Usage.objects.filter(organization=org).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_recording_loses_no_count(org):
    def record():
        quotas.record_embeddings(org, 3)
        quotas.record_reply_tokens(org, 10)
        return "recorded"

    assert run_together(*[record] * THREADS) == ["recorded"] * THREADS

    row = Usage.objects.get(organization=org)
    assert (row.embeddings, row.reply_tokens) == (3 * THREADS, 10 * THREADS)
