"""Embedding benchmark: the local model's throughput, single-query latency, and the
backfill command end to end (messages read, embedded, stored) per second.

    .venv/bin/python bench/embedding.py [--sentences 2048] [--messages 2000]

Runs on the embedded database, in a database of its own."""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentiles, print_table, setup_django, write_results  # noqa: E402

TOPICS = ["paid social budget", "email subject lines", "webinar promotion", "competitor pricing", "SEO keywords",
          "brand voice", "Q4 launch plan", "lead scoring", "influencer outreach", "retention campaign"]


TEMPLATES = [
    "What should be our focus for the {topic}?",
    "Draft three ideas for the {topic}.",
    "How much should we spend on the {topic} next quarter?",
    "Summarize last month's results for the {topic} in two sentences.",
    "The {topic} underperformed; which channels should we cut first, and why?",
    "Compare the {topic} with what our main competitor announced last week, then suggest a response "
    "for the {season} campaign.",
]


def sentences(count: int) -> list[str]:
    """Chat messages of mixed length (6 to 25 words, ~13 on average)."""
    return [
        f"#{i} " + TEMPLATES[i % len(TEMPLATES)].format(
            topic=TOPICS[i % len(TOPICS)], season=["holiday", "spring", "product", "partner"][i % 4]
        )
        for i in range(count)
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=2048)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()

    setup_django("raptorflow_bench_embedding")
    import django
    from django.core.management import call_command

    from search.providers import get_embedding_provider

    provider = get_embedding_provider()
    started = time.perf_counter()
    provider.embed(["warm up"])
    load_seconds = time.perf_counter() - started

    texts = sentences(args.sentences)
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        provider.embed(texts)
        runs.append(args.sentences / (time.perf_counter() - started))
    single = []
    for text in texts[:100]:
        started = time.perf_counter()
        provider.embed_one(text)
        single.append((time.perf_counter() - started) * 1000)

    from accounts.services import user_create_with_personal_organization
    from conversations.models import Conversation, Message
    from search.models import MessageEmbedding

    Conversation.objects.filter(title="Backfill bench").delete()
    user = user_create_with_personal_organization(email=f"backfill-{time.time_ns()}@example.com")
    conversation = Conversation.objects.create(organization=user.default_organization, owner=user,
                                               title="Backfill bench", agent_type="general",
                                               message_count=args.messages, activity_at=django.utils.timezone.now())
    Message.objects.bulk_create(
        Message(conversation=conversation, organization=conversation.organization, owner=user, role="user",
                content=text, sequence=i + 1)
        for i, text in enumerate(sentences(args.messages))
    )
    started = time.perf_counter()
    call_command("backfill_embeddings", conversation=str(conversation.id), verbosity=0)
    backfill_seconds = time.perf_counter() - started
    stored = MessageEmbedding.objects.filter(conversation=conversation).count()

    single_stats = percentiles(single)
    words = statistics.fmean(len(text.split()) for text in texts)
    rows = [
        {"measure": f"local model, {args.sentences} messages of ~{words:.0f} words",
         "value": f"{statistics.median(runs):.0f} sentences/s"},
        {"measure": "one query (p50 / p95)", "value": f"{single_stats['p50_ms']} / {single_stats['p95_ms']} ms"},
        {"measure": "model load", "value": f"{load_seconds:.2f} s"},
        {"measure": f"backfill_embeddings, {args.messages} messages",
         "value": f"{stored / backfill_seconds:.0f} messages/s ({stored} stored in {backfill_seconds:.1f} s)"},
    ]
    print_table("Embedding (local all-MiniLM-L6-v2, CPU)", rows, ["measure", "value"])
    write_results("embedding", {
        "sentences_per_second": round(statistics.median(runs), 1),
        "single_query_ms": single_stats,
        "model_load_seconds": round(load_seconds, 2),
        "backfill_messages_per_second": round(stored / backfill_seconds, 1),
        "backfill_messages": stored,
    })


if __name__ == "__main__":
    main()
