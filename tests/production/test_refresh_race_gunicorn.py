"""Refresh tokens are single-use against the real server: parallel refreshes with one token
on gunicorn with several worker processes and threads, each request on its own connection
and transaction."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from accounts.services import user_create_with_personal_organization
from accounts.tokens import mint_tokens
from tests.production.conftest import gunicorn_server, process_env, request

PARALLEL = 5
TRIALS = 10


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    env = process_env(RATE_LIMIT_AUTH_IP="off", RATE_LIMIT_AUTH_ACCOUNT="off", RATE_LIMIT_USER="off")
    with gunicorn_server(env, workers=3, threads=2) as running:
        yield running


def test_of_parallel_refreshes_on_gunicorn_exactly_one_wins_and_its_tokens_work(transactional_db, server):
    user = user_create_with_personal_organization(email="gunicorn-racer@acme.test", name="Racer")
    token = mint_tokens(user, user.default_organization)["refresh"]

    def refresh(raw):
        return request(server.port, "POST", "/api/auth/refresh", body={"refresh": raw})

    with ThreadPoolExecutor(PARALLEL) as pool:
        for trial in range(TRIALS):
            results = list(pool.map(refresh, [token] * PARALLEL))

            statuses = sorted(status for status, _, _ in results)
            assert statuses == [200] + [401] * (PARALLEL - 1), (trial, results)
            assert {body["error"]["code"] for status, _, body in results if status == 401} == {"refresh_token_reused"}
            tokens = next(body for status, _, body in results if status == 200)
            me = request(server.port, "GET", "/api/auth/me", headers={"Authorization": f"Bearer {tokens['access']}"})
            assert me[0] == 200
            token = tokens["refresh"]

    assert refresh(token)[0] == 200
