"""Replies running at the same moment on real transactions (one database connection per
thread): the reply-token quota holds — concurrent replies overshoot it by at most one
reply's reservation, refused ones store nothing — and one Idempotency-Key calls the
provider once."""

import time
from collections import Counter
from functools import partial

import httpx
import pytest

from billing.models import Usage
from conversations.models import Message
from raptorflow import jobs
from tests.concurrency import run_together
from tests.conftest import make_client
from tests.rag.conftest import OPENAI_URL, openai_completion, reply_url

REPLIES = 8
LIMIT = 40
PROMPT_TOKENS, COMPLETION_TOKENS = 10, 2  # what the mocked provider reports for each reply


@pytest.fixture(autouse=True)
def _background_jobs_finish_within_the_test(transactional_db):
    """Every committed message schedules its embedding job on the in-process worker; they
    all finish before the database is flushed for the next test."""
    yield
    jobs.in_process_worker().wait_until_idle()


def slow_provider(respx_mock, seconds=0.5):
    """An OpenAI answer after `seconds`, so the replies overlap while they wait for it."""

    def answer(request):
        time.sleep(seconds)
        return httpx.Response(
            200, json=openai_completion("Try a run club.", prompt_tokens=PROMPT_TOKENS,
                                        completion_tokens=COMPLETION_TOKENS)
        )

    return respx_mock.post(OPENAI_URL).mock(side_effect=answer)


def reply_tokens_used(org) -> int:
    return Usage.objects.get(organization=org).reply_tokens


@pytest.mark.django_db(transaction=True)
def test_parallel_replies_never_overshoot_the_reply_token_quota_by_more_than_one_reservation(
    owner, org, make_conversation, all_keys, respx_mock, settings
):
    settings.FREE_PLAN_REPLY_TOKENS = LIMIT
    route = slow_provider(respx_mock)
    conversations = [make_conversation(title=f"Launch {n}") for n in range(REPLIES)]
    clients = [make_client(owner, org) for _ in range(REPLIES)]

    def ask(index):
        response = clients[index].post(reply_url(conversations[index]), {"content": "Ideas?"}, format="json")
        return response.status_code, response.json()

    outcomes = run_together(*[partial(ask, index) for index in range(REPLIES)])

    statuses = Counter(status for status, _ in outcomes)
    assert set(statuses) <= {201, 402}, outcomes
    answered = statuses[201]
    assert answered >= 1
    used = reply_tokens_used(org)
    # Every reservation settled to the provider's figure...
    assert route.call_count == answered
    assert used == answered * (PROMPT_TOKENS + COMPLETION_TOKENS)
    # ...and each reply started while tokens remained: at most one reply past the limit
    # (the bound of the reservation, CHAT_MAX_REPLY_TOKENS + the prompt budget, is larger).
    assert used < LIMIT + PROMPT_TOKENS + COMPLETION_TOKENS
    assert used <= LIMIT + settings.CHAT_MAX_REPLY_TOKENS + settings.RAG_PROMPT_TOKEN_BUDGET
    for (status, body), conversation in zip(outcomes, conversations, strict=True):
        stored = Message.objects.filter(conversation=conversation).count()
        if status == 402:
            error = body["error"]
            assert (error["code"], error["quota"], error["limit"]) == ("quota_exceeded", "reply_tokens", LIMIT)
            assert error["resets_at"]
            assert stored == 0
        else:
            assert stored == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_replies_with_one_idempotency_key_call_the_provider_once(
    owner, org, make_conversation, all_keys, respx_mock
):
    route = slow_provider(respx_mock)
    conversation = make_conversation()
    clients = [make_client(owner, org) for _ in range(REPLIES)]

    def ask(index):
        response = clients[index].post(
            reply_url(conversation), {"content": "Ideas?"}, format="json", HTTP_IDEMPOTENCY_KEY="double-click"
        )
        return response.status_code, response.json()

    outcomes = run_together(*[partial(ask, index) for index in range(REPLIES)])

    assert route.call_count == 1
    statuses = Counter(status for status, _ in outcomes)
    assert statuses[201] == 1 and set(statuses) <= {201, 200, 409}, outcomes
    first = next(body for status, body in outcomes if status == 201)
    for status, body in outcomes:
        if status == 200:
            assert body == first
        elif status == 409:
            assert body["error"]["code"] == "in_progress"
    assert Message.objects.filter(conversation=conversation).count() == 2
    assert reply_tokens_used(org) == PROMPT_TOKENS + COMPLETION_TOKENS

    # Once it is stored, every retry receives it.
    again = clients[0].post(reply_url(conversation), {"content": "Ideas?"}, format="json",
                            HTTP_IDEMPOTENCY_KEY="double-click")
    assert (again.status_code, again.json()) == (200, first)
