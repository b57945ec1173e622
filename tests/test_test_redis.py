"""The test run's Redis (tests/redis_server.py): its own server on a free port unless
TEST_REDIS_URL is given, and every Redis a test uses is that one."""

import os
from pathlib import Path
from urllib.parse import urlsplit

import redis

from tests import redis_server
from tests.redis_server import RedisServer, redis_url, server_binary


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def test_the_run_uses_its_own_server_unless_a_url_is_given():
    url = os.environ["TEST_REDIS_URL"]
    if redis_server.given_url is not None:
        assert redis_server.server is None
        assert url == redis_server.given_url
        return
    server = redis_server.server
    assert server is not None
    assert url == server.url
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    assert parts.port == server.port != 6379
    client = _client(url)
    try:
        assert client.ping()
        info = client.info("server")
        # The process answering is the one the harness started, not another Redis.
        assert info["process_id"] == server.proc.pid
        assert info["tcp_port"] == server.port
        assert client.config_get("save")["save"] == ""
        assert client.config_get("appendonly")["appendonly"] == "no"
        assert Path(client.config_get("dir")["dir"]).resolve() == Path(server.directory).resolve()
    finally:
        client.close()


def test_other_databases_are_on_the_same_server():
    parts = urlsplit(redis_url())
    for db in (13, 14, 15):
        other = urlsplit(redis_url(db))
        assert (other.scheme, other.netloc, other.path) == (parts.scheme, parts.netloc, f"/{db}")


def test_the_production_tests_use_the_runs_redis():
    from tests.production import test_celery_worker
    from tests.production.conftest import flushed_redis

    assert redis_url(14) == test_celery_worker.BROKER
    netloc = urlsplit(redis_url()).netloc
    with flushed_redis(13) as client:
        kwargs = client.connection_pool.connection_kwargs
        assert f"{kwargs['host']}:{kwargs['port']}" == netloc
        assert kwargs["db"] == 13


def test_a_server_is_stopped_and_its_directory_removed():
    server = RedisServer(server_binary()).start()
    try:
        assert server.port != 6379
        client = _client(server.url)
        assert client.ping()
        client.close()
    finally:
        server.stop()
    assert server.proc.returncode is not None
    assert not Path(server.directory).exists()
