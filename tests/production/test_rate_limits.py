"""Rate limits shared across instances: two real gunicorn processes on one Redis, and the
same counters in-process for the admin login and the database cache."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from accounts.services import user_create_with_personal_organization
from accounts.tokens import mint_tokens
from raptorflow import throttling
from raptorflow.models import AuditLog
from tests.production.conftest import flushed_redis, gunicorn_server, process_env, request
from tests.redis_server import redis_url

LIMITS = {
    "RATE_LIMIT_USER": "5/hour",
    "RATE_LIMIT_AUTH_IP": "4/hour",
    "RATE_LIMIT_AUTH_ACCOUNT": "3/hour",
    # One proxy in front, as on Cloud Run: each test speaks from its own client address.
    "NUM_PROXIES": "1",
    "MAX_REQUEST_BYTES": "2048",
}


@pytest.fixture(scope="module")
def two_servers(django_db_setup, django_db_blocker):
    """Two server processes (as two Cloud Run instances) sharing Redis database 15."""
    with flushed_redis(15) as client:
        env = process_env(REDIS_URL=redis_url(15), CELERY_BROKER_URL=redis_url(15), **LIMITS)
        with gunicorn_server(env) as first, gunicorn_server(env) as second:
            yield first, second, client


def _client_address() -> dict:
    """A distinct client address per test (the limits are per IP)."""
    return {"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250 + 1}"}


def test_api_limit_per_user_is_shared_by_two_server_processes(transactional_db, two_servers):
    first, second, redis_client = two_servers
    user = user_create_with_personal_organization(email="burst@acme.test", name="Burst")
    headers = {"Authorization": f"Bearer {mint_tokens(user, user.default_organization)['access']}"}

    statuses = [request(server.port, "GET", "/api/auth/me", headers=headers)[0] for server in [first, second] * 3]

    # 5 per hour in all: the sixth request is refused although each process saw only three.
    assert statuses == [200, 200, 200, 200, 200, 429]
    status, response_headers, body = request(first.port, "GET", "/api/auth/me", headers=headers)
    assert status == 429
    assert body["error"]["code"] == "rate_limited"
    assert 3500 <= int(response_headers["retry-after"]) <= 3600
    assert response_headers["x-request-id"]
    assert any(key.endswith(f"rl:user:{user.pk}".encode()) for key in redis_client.keys("*"))


def test_another_user_is_not_limited_by_someone_elses_burst(transactional_db, two_servers):
    first, second, _ = two_servers
    busy = user_create_with_personal_organization(email="busy@acme.test", name="Busy")
    calm = user_create_with_personal_organization(email="calm@acme.test", name="Calm")
    busy_headers = {"Authorization": f"Bearer {mint_tokens(busy, busy.default_organization)['access']}"}
    for _ in range(6):
        request(first.port, "GET", "/api/auth/me", headers=busy_headers)

    calm_headers = {"Authorization": f"Bearer {mint_tokens(calm, calm.default_organization)['access']}"}
    assert request(second.port, "GET", "/api/auth/me", headers=calm_headers)[0] == 200


def test_auth_endpoints_are_limited_per_ip_across_processes(transactional_db, two_servers):
    first, second, _ = two_servers
    address = _client_address()
    statuses = [
        request(server.port, "POST", "/api/auth/verify-token", body={"token": "not-a-token"}, headers=address)[0]
        for server in [first, second] * 3
    ]
    assert statuses == [401, 401, 401, 401, 429, 429]
    # Another client address is not affected.
    other = request(first.port, "POST", "/api/auth/verify-token", body={"token": "x"}, headers=_client_address())
    assert other[0] == 401


def test_token_endpoints_are_limited_per_account_whatever_the_ip(transactional_db, two_servers):
    first, second, _ = two_servers
    user = user_create_with_personal_organization(email="refresher@acme.test", name="Refresher")
    access = mint_tokens(user, user.default_organization)["access"]

    statuses = [
        request(server.port, "POST", "/api/auth/verify-token", body={"token": access}, headers=_client_address())[0]
        for server in [first, second, first, second]
    ]
    assert statuses == [200, 200, 200, 429]


def test_forged_tokens_naming_an_account_do_not_use_up_its_limit(transactional_db, two_servers):
    import jwt

    first, second, _ = two_servers
    user = user_create_with_personal_organization(email="victim@acme.test", name="Victim")
    forged = jwt.encode({"user_id": str(user.pk), "token_type": "access"}, "not-our-key", algorithm="HS256")
    for _ in range(4):
        status, _, _ = request(first.port, "POST", "/api/auth/verify-token", body={"token": forged},
                               headers=_client_address())
        assert status == 401

    access = mint_tokens(user, user.default_organization)["access"]
    assert request(second.port, "POST", "/api/auth/verify-token", body={"token": access},
                   headers=_client_address())[0] == 200


def test_body_over_the_limit_is_a_json_413_before_it_is_read(transactional_db, two_servers):
    first, _, _ = two_servers
    status, _, body = request(
        first.port, "POST", "/api/auth/verify-token", body={"token": "x" * 4000}, headers=_client_address()
    )
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"


def _chunked_post(port, path, payload: bytes, headers: dict):
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=iter([payload[i:i + 500] for i in range(0, len(payload), 500)]),
                 headers={"Content-Type": "application/json", **headers}, encode_chunked=True)
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return response.status, body


def test_chunked_body_over_the_limit_is_a_json_413(transactional_db, two_servers):
    first, _, _ = two_servers
    status, body = _chunked_post(first.port, "/api/auth/verify-token", b'{"token": "' + b"x" * 4000 + b'"}',
                                 _client_address())
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"


def test_chunked_body_under_the_limit_is_read(transactional_db, two_servers):
    first, _, _ = two_servers
    status, body = _chunked_post(first.port, "/api/auth/verify-token", b'{"token": "not-a-token"}',
                                 _client_address())
    # The token was read and judged (401), not missing (400).
    assert status == 401
    assert body["error"]["code"] == "token_not_valid"


# --- the admin login (in-process) ------------------------------------------------------

SIGN_IN = {"username": "ops@raptorflow.test", "password": "correct horse battery"}


@pytest.fixture
def operator(db):
    from accounts.models import User

    return User.objects.create_superuser("ops@raptorflow.test", password="correct horse battery")


def test_admin_login_is_limited_per_account_and_ip(operator, client):
    with override_settings(RATE_LIMITS={"admin_login_account": "3/hour", "admin_login_ip": "100/hour"}):
        for _ in range(3):
            response = client.post("/admin/login/", {"username": "ops@raptorflow.test", "password": "wrong"},
                                   REMOTE_ADDR="192.0.2.1")
            assert response.status_code == 200  # the form again, with its error
        response = client.post("/admin/login/", SIGN_IN | {"username": "OPS@raptorflow.test"},
                               REMOTE_ADDR="192.0.2.1")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session


def test_admin_login_failures_from_one_ip_do_not_lock_the_account_out_elsewhere(operator, client):
    limits = {"admin_login_account": "3/hour", "admin_login_account_total": "6/hour", "admin_login_ip": "100/hour"}
    with override_settings(RATE_LIMITS=limits):
        for _ in range(5):
            client.post("/admin/login/", {"username": "ops@raptorflow.test", "password": "wrong"},
                        REMOTE_ADDR="203.0.113.66")
        response = client.post("/admin/login/", SIGN_IN, REMOTE_ADDR="192.0.2.8")
    assert response.status_code == 302
    assert "_auth_user_id" in client.session


def test_admin_login_is_limited_per_account_from_any_ip_up_to_a_ceiling(operator, client):
    limits = {"admin_login_account": "3/hour", "admin_login_account_total": "4/hour", "admin_login_ip": "100/hour"}
    with override_settings(RATE_LIMITS=limits):
        for n in range(4):
            response = client.post("/admin/login/", {"username": "ops@raptorflow.test", "password": "wrong"},
                                   REMOTE_ADDR=f"192.0.2.{n + 1}")
            assert response.status_code == 200
        response = client.post("/admin/login/", SIGN_IN | {"username": "OPS@raptorflow.test"},
                               REMOTE_ADDR="192.0.2.99")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_admin_login_is_limited_per_ip(operator, client):
    with override_settings(RATE_LIMITS={"admin_login_account": "100/hour", "admin_login_ip": "2/hour"}):
        for n in range(2):
            client.post("/admin/login/", {"username": f"guess{n}@raptorflow.test", "password": "x"},
                        REMOTE_ADDR="192.0.2.50")
        response = client.post("/admin/login/", SIGN_IN,
                               REMOTE_ADDR="192.0.2.50")
    assert response.status_code == 429


def test_admin_login_within_the_limits_signs_in_and_is_audited(operator, client):
    response = client.post("/admin/login/", SIGN_IN,
                           REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 302
    entry = AuditLog.objects.get(action="admin.sign_in")
    assert entry.actor_id == operator.pk
    assert entry.ip_address == "192.0.2.7"


# --- the counter itself -----------------------------------------------------------------


def test_database_cache_counter_loses_no_increment_under_concurrency(transactional_db):
    """The embedded default (database cache): 8 threads, 10 hits each, one exact total."""
    assert caches["default"].__class__.__name__ == "DatabaseCache"
    key = f"concurrency:{uuid.uuid4()}"
    counts: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def hammer():
        try:
            barrier.wait()
            for _ in range(10):
                counts.append(throttling.hit(key, 3600)[0])
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    # Every hit saw a different count: no two requests were let through as the same one.
    assert sorted(counts) == list(range(1, 81))


@pytest.mark.parametrize(
    ("rate", "expected"),
    [("600/min", (600, 60)), ("5/10s", (5, 10)), ("30/hour", (30, 3600)), ("1/day", (1, 86400)), ("off", None)],
)
def test_rates_are_read_from_settings_strings(rate, expected):
    assert throttling.parse_rate(rate) == expected


def test_a_malformed_rate_is_refused():
    with pytest.raises(ValueError, match="N/period"):
        throttling.parse_rate("fast")


def test_database_counter_restarts_an_expired_window_at_one(db):
    from raptorflow.models import RateLimitWindow

    key = f"restart:{uuid.uuid4()}"
    assert [throttling.hit(key, 60)[0] for _ in range(3)] == [1, 2, 3]
    RateLimitWindow.objects.filter(key=key).update(expires_at=timezone.now() - timedelta(seconds=1))

    count, remaining = throttling.hit(key, 60)

    assert count == 1
    assert 59 <= remaining <= 60
