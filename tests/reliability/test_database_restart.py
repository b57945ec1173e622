"""PostgreSQL restarted (fast shutdown, back after two seconds) twice while four clients
post messages through gunicorn: a PostgreSQL of its own in a temporary directory, never the
shared embedded server. bench/reliability.py restart runs it longer."""

from bench.common import issue_tokens
from bench.reliability import private_postgres, run_db_restart, server_env


def test_every_message_answered_2xx_survives_database_restarts(tmp_path):
    with private_postgres() as server:
        env = server_env(server.create_database("raptorflow"))
        tokens = issue_tokens([f"restart-{c}@acme.test" for c in range(4)], env)
        result = run_db_restart(
            server, env, tokens, restarts=2, outage=2.0, warmup=3.0, gap=3.0, tail=3.0,
            log_path=tmp_path / "gunicorn.log",
        )

    assert result["messages_2xx"] > 0
    assert result["messages_lost"] == []
    # While the database is down the API says so, in its JSON error shape, and nothing else
    # fails; it answers 201 again after each restart by itself.
    assert set(result["errors_during_outages"]) <= {"503 JSON"}, result["error_examples"]
    assert result["errors_outside_outages"] == {}, result["error_examples"]
    assert result["errors_not_json"] == 0
    assert result["recovered_after_each_restart"]
