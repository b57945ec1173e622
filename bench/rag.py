"""RAG augmentation benchmark: rag.pipeline's retrieve_context + augment_prompt on a
conversation with a long history, through the seed's async interface.

    .venv/bin/python bench/rag.py [--history 400] [--other-conversations 20] [--queries 200]

Each query is new (the context cache never answers). The query's embedding (local model)
is timed by RaptorFlow's own embedding metric and reported apart, so "excluding the query
embedding" is the pipeline's database and ranking work alone."""

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentiles, print_table, setup_django, write_results  # noqa: E402
from bench.embedding import sentences  # noqa: E402


def embedding_seconds_total() -> float:
    from raptorflow.metrics import EMBEDDING_SECONDS

    return sum(
        sample.value
        for metric in EMBEDDING_SECONDS.collect()
        for sample in metric.samples
        if sample.name.endswith("_sum")
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, default=400, help="messages in the conversation")
    parser.add_argument("--other-conversations", type=int, default=20, help="of the same owner, 50 messages each")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    setup_django("raptorflow_bench_rag")
    from django.core.management import call_command
    from django.utils import timezone

    from accounts.services import user_create_with_personal_organization
    from conversations.models import Conversation, Message
    from rag.pipeline import get_rag_pipeline

    user = user_create_with_personal_organization(email=f"rag-bench-{time.time_ns()}@example.com")
    organization = user.default_organization

    def conversation_with(count: int, offset: int) -> Conversation:
        conversation = Conversation.objects.create(organization=organization, owner=user, title="RAG bench",
                                                   agent_type="strategy", message_count=count,
                                                   activity_at=timezone.now())
        Message.objects.bulk_create(
            Message(conversation=conversation, organization=organization, owner=user,
                    role="user" if i % 2 == 0 else "assistant", content=text, sequence=i + 1)
            for i, text in enumerate(sentences(offset + count)[offset:])
        )
        return conversation

    main_conversation = conversation_with(args.history, 0)
    for index in range(args.other_conversations):
        conversation_with(50, args.history + index * 50)
    print("embedding the history…", flush=True)
    call_command("backfill_embeddings", org=str(organization.id), verbosity=0)

    pipeline = get_rag_pipeline(user=user, organization=organization)
    queries = [f"How should we split the {topic} budget between channels, version {i}?"
               for i, topic in enumerate(sentences(args.queries))]

    async def one(query: str):
        context = await pipeline.retrieve_context(query=query, conversation_id=main_conversation.id)
        return await pipeline.augment_prompt(query=query, context=context)

    asyncio.run(one("warm up"))
    totals, embeddings, tokens, used = [], [], [], []
    for query in queries:
        embedded_before = embedding_seconds_total()
        started = time.perf_counter()
        augmented = asyncio.run(one(query))
        totals.append((time.perf_counter() - started) * 1000)
        embeddings.append((embedding_seconds_total() - embedded_before) * 1000)
        tokens.append(augmented.token_count)
        used.append(len(augmented.messages))
    excluding = [total - embedding for total, embedding in zip(totals, embeddings, strict=True)]

    rows = [
        {"measure": "retrieve_context + augment_prompt", **percentiles(totals)},
        {"measure": "  of which query embedding", **percentiles(embeddings)},
        {"measure": "  excluding the query embedding", **percentiles(excluding)},
    ]
    print_table(f"RAG augmentation, {args.history}-message conversation + {args.other_conversations} others",
                rows, ["measure", "count", "p50_ms", "p95_ms", "p99_ms"])
    print(f"context messages used: {min(used)}–{max(used)}, prompt tokens: {min(tokens)}–{max(tokens)}")
    write_results("rag", {"history": args.history, "other_conversations": args.other_conversations,
                          "total_ms": percentiles(totals), "embedding_ms": percentiles(embeddings),
                          "excluding_embedding_ms": percentiles(excluding)})


if __name__ == "__main__":
    main()
