"""A short mixed-load soak (bench/soak.py runs the long one): six clients with their own
accounts create and list conversations, post, list and page through messages, read recent
messages, search and read embedding stats against gunicorn (2 workers x 4 threads) on a
PostgreSQL of its own, while every message is embedded in the background."""

from bench.common import gunicorn, issue_tokens
from bench.reliability import private_postgres, server_env
from bench.soak import MIX, run_soak

CLIENTS = 6
SECONDS = 20


def test_mixed_load_gets_no_server_error_and_every_message_is_counted(tmp_path):
    with private_postgres() as server:
        env = server_env(server.create_database("raptorflow"))
        tokens = issue_tokens([f"soak-{c}@acme.test" for c in range(CLIENTS)], env)
        with gunicorn(env, workers=2, threads=4, log_path=tmp_path / "gunicorn.log") as port:
            result = run_soak(port, tokens, duration=SECONDS)

    assert result["server_errors"] == 0, result["failures"]
    assert result["no_answer"] == 0, result["failures"]
    # Every operation of the mix was exercised and answered successfully.
    for operation, _ in MIX:
        statuses = result["statuses"].get(operation, {})
        assert any(200 <= status < 300 for status in statuses), (operation, statuses)
    assert result["messages_stored"] > 0
    assert result["messages_not_counted"] == 0
