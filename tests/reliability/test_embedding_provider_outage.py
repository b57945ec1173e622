"""The embedding provider (EMBEDDING_PROVIDER=openai, pointed at a fake OpenAI server on
loopback) answers 503 for a while and then is gone for a while, as four clients post
messages: messages never fail, none is lost, and backfill_embeddings leaves none without
its embedding. bench/reliability.py provider runs it longer."""

from bench.common import issue_tokens
from bench.reliability import FakeOpenAI, private_postgres, provider_env, run_provider_outage


def test_messages_survive_an_embedding_provider_outage_and_backfill_embeds_them_all(tmp_path):
    fake = FakeOpenAI()
    fake.start()
    try:
        with private_postgres() as server:
            env = provider_env(server.create_database("raptorflow"), fake)
            tokens = issue_tokens([f"provider-{c}@acme.test" for c in range(4)], env)
            result = run_provider_outage(
                env, fake, tokens, up=3.0, unavailable=4.0, down=4.0, recovered=3.0,
                log_path=tmp_path / "gunicorn.log",
            )
    finally:
        fake.stop()

    assert result["messages_2xx"] > 0
    assert result["message_errors"] == {}
    assert result["messages_lost"] == []
    # The outage was real: the provider refused calls and messages were left unembedded...
    assert result["provider_calls"].get("unavailable", 0) > 0
    assert result["pending_embeddings_before_backfill"] > 0
    # ...search said so with its documented 503, and the backfill caught up completely.
    assert set(result["search_answers"]) <= {"200", "503 upstream_unavailable"}, result["search_answers"]
    assert result["pending_embeddings_after_backfill"] == 0
