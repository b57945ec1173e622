"""Knowledge base benchmark, on a database of its own (raptorflow_bench_documents).

    .venv/bin/python bench/documents.py                      # every part
    .venv/bin/python bench/documents.py --parts ingest       # ingestion only
    .venv/bin/python bench/documents.py --chunks 100000 --parts search

- ingest: end to end (upload through documents.services → processing job → searchable) for
  one PDF of --pages pages (made with pypdf, ~120 words a page) and for --small-documents
  small Markdown documents; pages/s, documents/s and chunks/s with the local model.
- search: --chunks synthetic 384-d chunk vectors (clustered, unit length) readable by one
  caller, in the real documents_chunkembedding table with its per-model HNSW index;
  documents.selectors.rank_chunks (search's plan: HNSW with iterative scans above
  SEARCH_EXACT_MAX_ROWS) p50/p95 and recall@10 against exact search.
- rag: retrieve_context + augment_prompt for a caller with a conversation and the ingested
  documents in the budget, p50/p95, with and without the query embedding.
"""

import argparse
import asyncio
import io
import sys
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentiles, print_table, setup_django, write_results  # noqa: E402

WORDS = [
    "brand", "campaign", "audience", "launch", "budget", "channel", "creative", "funnel", "conversion",
    "retention", "pricing", "positioning", "message", "persona", "runner", "protein", "vegan", "podcast",
    "newsletter", "social", "paid", "organic", "sponsorship", "event", "metric", "quarter", "growth", "churn",
    "signup", "referral", "partner", "agency", "review",
]


def prose(rng, words: int) -> str:
    picked = rng.choice(WORDS, size=words)
    sentences = [" ".join(picked[i : i + 12]).capitalize() + "." for i in range(0, words, 12)]
    return " ".join(sentences)


def make_pdf(pages: list[str]) -> bytes:
    sys.path.insert(0, str(ROOT))
    from tests.documents.files import make_pdf as build

    return build(pages)


class Upload(io.BytesIO):
    def __init__(self, name: str, content: bytes):
        super().__init__(content)
        self.name = name
        self.size = len(content)

    def chunks(self, chunk_size=1 << 20):
        self.seek(0)
        while block := self.read(chunk_size):
            yield block


def ingest(user, organization, name: str, content: bytes):
    from documents import services
    from documents.models import Document

    document, _ = services.document_upload(user=user, organization=organization, uploaded=Upload(name, content),
                                           title=name, visibility="organization")
    services.unscoped_document_ingest(document_id=document.pk, generation=document.processing_generation)
    return Document.objects.get(pk=document.pk)


def embedding_alone(documents) -> float:
    """Seconds the active provider takes to embed these documents' chunks, batched as
    ingestion batches them."""
    from documents.chunking import embedded_text
    from documents.models import DocumentChunk
    from documents.services import EMBED_BATCH
    from search.providers import get_embedding_provider

    provider = get_embedding_provider()
    texts = [
        [embedded_text(heading, text) for heading, text in
         DocumentChunk.objects.filter(document=document).order_by("index").values_list("heading", "text")]
        for document in documents
    ]
    started = time.perf_counter()
    for chunk_texts in texts:
        for start in range(0, len(chunk_texts), EMBED_BATCH):
            provider.embed(chunk_texts[start : start + EMBED_BATCH])
    return time.perf_counter() - started


def bench_ingest(user, organization, args, rng) -> dict:
    from documents import services

    services._schedule = lambda document: None  # processing is timed here, in this thread
    ingest(user, organization, "warm-up.md", b"# Warm up\n\nLoads the model and the tokenizer.")
    content = make_pdf([prose(rng, 120) for _ in range(args.pages)])
    started = time.perf_counter()
    document = ingest(user, organization, "report.pdf", content)
    pdf_seconds = time.perf_counter() - started
    assert document.status == "ready", document.error

    chunks, notes = 0, []
    started = time.perf_counter()
    for index in range(args.small_documents):
        body = f"# Note {index}\n\n{prose(rng, 80)}\n".encode()
        note = ingest(user, organization, f"note-{index}.md", body)
        chunks += note.chunks_total
        notes.append(note)
    small_seconds = time.perf_counter() - started
    # The reference, in the same run: the embedding calls alone on the same chunk texts,
    # batched as ingestion batches them (a document at a time, EMBED_BATCH chunks a call).
    pdf_embedding = embedding_alone([document])
    small_embedding = embedding_alone(notes)
    rows = [
        {"input": f"PDF, {args.pages} pages ({len(content) // 1024} KB)", "seconds": round(pdf_seconds, 2),
         "per_s": f"{args.pages / pdf_seconds:.1f} pages/s", "chunks": document.chunks_total,
         "chunks_per_s": round(document.chunks_total / pdf_seconds, 1),
         "embedding_alone_s": round(pdf_embedding, 2), "ratio": round(pdf_seconds / pdf_embedding, 2)},
        {"input": f"{args.small_documents} small Markdown documents", "seconds": round(small_seconds, 2),
         "per_s": f"{args.small_documents / small_seconds:.1f} documents/s", "chunks": chunks,
         "chunks_per_s": round(chunks / small_seconds, 1),
         "embedding_alone_s": round(small_embedding, 2), "ratio": round(small_seconds / small_embedding, 2)},
    ]
    print_table("Ingestion end to end (upload → searchable), local model; ratio = end to end / embedding alone",
                rows, ["input", "seconds", "per_s", "chunks", "chunks_per_s", "embedding_alone_s", "ratio"])
    return {"ingest": rows}


def bench_search(user, organization, args, rng) -> dict:
    from django.db import connection, transaction

    from documents.models import ChunkEmbedding, Document, DocumentChunk
    from documents.search_plan import CHUNK_VECTORS
    from documents.selectors import rank_chunks
    from search import tenant_indexes, vector_index
    from search.models import TenantVectorIndex
    from search.providers import active_spec

    spec = active_spec()
    # Earlier runs' synthetic chunks go first: each run measures --chunks of them.
    Document.objects.filter(owner__email__startswith="documents-search-").exclude(organization=organization).delete()
    # Building the indexes once after the load is much faster than growing them row by row.
    vector_index.drop_index(spec.model, table=CHUNK_VECTORS)
    for index in TenantVectorIndex.objects.filter(table=CHUNK_VECTORS.db_table):
        tenant_indexes.unscoped_index_drop(index)
    with connection.cursor() as cursor:
        # (and any an interrupted run left without its registry row)
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname LIKE %s",
                       [CHUNK_VECTORS.db_table, tenant_indexes.PREFIX + "%"])
        for (name,) in cursor.fetchall():
            cursor.execute(f"DROP INDEX IF EXISTS {connection.ops.quote_name(name)}")
    centers = rng.standard_normal((64, 384)).astype(np.float32)
    documents = max(1, args.chunks // 200)
    print(f"inserting {args.chunks} chunk vectors in {documents} documents…", flush=True)
    with transaction.atomic():
        rows = [Document(organization=organization, owner=user, title=f"Synthetic {i}", visibility="organization",
                         filename=f"s{i}.txt", kind="text", content_type="text/plain", size_bytes=1,
                         sha256=uuid.uuid4().hex * 2, file=f"synthetic/{i}", status="ready")
                for i in range(documents)]
        Document.objects.bulk_create(rows)
    made = 0
    while made < args.chunks:
        batch = min(5000, args.chunks - made)
        vectors = centers[rng.integers(0, len(centers), batch)] + 0.35 * rng.standard_normal((batch, 384))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with transaction.atomic():
            chunks = DocumentChunk.objects.bulk_create(
                DocumentChunk(document=rows[(made + i) % documents], organization=organization, owner=user,
                              visibility="organization", index=(made + i) // documents, text="synthetic",
                              char_start=0, char_end=9, token_count=1)
                for i in range(batch)
            )
            ChunkEmbedding.objects.bulk_create(
                ChunkEmbedding(chunk=chunk, document_id=chunk.document_id, organization=organization, owner=user,
                               visibility="organization", model=spec.model, dimensions=spec.dimensions,
                               embedding=vector.tolist())
                for chunk, vector in zip(chunks, vectors, strict=True)
            )
        made += batch
    started = time.perf_counter()
    vector_index.ensure_index(spec.model, spec.dimensions, table=CHUNK_VECTORS)
    shared_build_seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE documents_chunkembedding")

    queries = centers[rng.integers(0, len(centers), args.queries)] + 0.35 * rng.standard_normal((args.queries, 384))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    everything = [str(d.pk) for d in rows]
    truths, exact_latencies = [], []
    for query in queries:
        # Restricted to chosen documents (here: all of them), a search is exact: the reference.
        started = time.perf_counter()
        exact, _ = rank_chunks(user=user, organization=organization, query="", query_vector=query.tolist(),
                               model=spec.model, limit=10, document_ids=everything)
        exact_latencies.append((time.perf_counter() - started) * 1000)
        truths.append({hit.chunk_id for hit in exact})

    def measure(build_seconds: float) -> dict:
        latencies, recalls, plan = [], [], ""
        for query, truth in zip(queries, truths, strict=True):
            started = time.perf_counter()
            hits, plan = rank_chunks(user=user, organization=organization, query="", query_vector=query.tolist(),
                                     model=spec.model, limit=10)
            latencies.append((time.perf_counter() - started) * 1000)
            recalls.append(len(truth & {hit.chunk_id for hit in hits}) / max(1, len(truth)))
        return {"chunks": args.chunks, "plan": plan, **percentiles(latencies),
                "recall@10": round(float(np.mean(recalls)), 3), "index_build_s": round(build_seconds, 1)}

    # Side by side: the model's shared index (an organization without its own yet), then the
    # organization's own index, built as the background job builds it.
    result = [{"chunks": args.chunks, "plan": "exact (reference)", **percentiles(exact_latencies), "recall@10": 1.0,
               "index_build_s": 0.0}, measure(shared_build_seconds)]
    started = time.perf_counter()
    outcome = tenant_indexes.unscoped_index_build(table=CHUNK_VECTORS, model=spec.model, dimensions=spec.dimensions,
                                                  scope=(organization.pk,))
    tenant_indexes.forget_cache()
    print(f"organization's own chunk index: {outcome}", flush=True)
    result.append(measure(time.perf_counter() - started))
    for row in result:
        row["p95_vs_exact"] = round(row["p95_ms"] / result[0]["p95_ms"], 3)
    print_table("Document search (rank_chunks, vector mode, top 10)", result,
                ["chunks", "plan", "count", "p50_ms", "p95_ms", "p95_vs_exact", "recall@10", "index_build_s"])
    return {"search": result}


def bench_rag(user, organization, args, rng) -> dict:
    """Side by side in one run, query by query: the caller with the ingested documents
    readable, and the reference, a caller of an organization without documents asking the
    same questions in a conversation of the same messages (RAG over messages alone)."""
    from django.utils import timezone

    from accounts.services import user_create_with_personal_organization
    from conversations.models import Conversation, Message
    from rag.pipeline import get_rag_pipeline
    from raptorflow import metrics

    def embedding_seconds() -> float:
        return sum(
            sample.value for metric in metrics.EMBEDDING_SECONDS.collect() for sample in metric.samples
            if sample.name.endswith("_sum")
        )

    contents = [prose(rng, 30) for _ in range(40)]
    reference_user = user_create_with_personal_organization(email=f"documents-rag-ref-{time.time_ns()}@example.com")

    def caller(person, org):
        conversation = Conversation.objects.create(organization=org, owner=person, title="bench",
                                                   agent_type="strategy", message_count=40, activity_at=timezone.now())
        Message.objects.bulk_create(
            Message(conversation=conversation, organization=org, owner=person,
                    role="user" if i % 2 == 0 else "assistant", content=content, sequence=i + 1)
            for i, content in enumerate(contents)
        )
        pipeline = get_rag_pipeline(user=person, organization=org)

        async def one(query: str):
            context = await pipeline.retrieve_context(query=query, conversation_id=conversation.id)
            return await pipeline.augment_prompt(query=query, context=context)

        return one

    callers = {"with documents": caller(user, organization),
               "messages only (reference)": caller(reference_user, reference_user.default_organization)}
    totals = {name: [] for name in callers}
    excluding = {name: [] for name in callers}
    used = []
    for one in callers.values():
        asyncio.run(one("warm up"))
    for index in range(args.queries):
        query = f"How should we split the {WORDS[index % len(WORDS)]} budget, take {index}?"
        # Alternating which goes first, so neither always meets a warmer cache.
        for name in sorted(callers, reverse=bool(index % 2)):
            before = embedding_seconds()
            started = time.perf_counter()
            augmented = asyncio.run(callers[name](query))
            total = (time.perf_counter() - started) * 1000
            totals[name].append(total)
            excluding[name].append(total - (embedding_seconds() - before) * 1000)
            if name == "with documents":
                used.append(len(augmented.chunks))
    rows = []
    for name in callers:
        rows.append({"measure": f"retrieve_context + augment_prompt, {name}", **percentiles(totals[name])})
        rows.append({"measure": "  excluding the query embedding", **percentiles(excluding[name])})
    with_documents, reference = (percentiles(totals[name])["p95_ms"] for name in callers)
    print_table("RAG augmentation with documents in the budget", rows, ["measure", "count", "p50_ms", "p95_ms"])
    print(f"document chunks in the prompt: {min(used)}–{max(used)}; p95 ratio to messages only: "
          f"{with_documents / reference:.2f}×")
    return {"rag": {name: {"total_ms": percentiles(totals[name]),
                           "excluding_embedding_ms": percentiles(excluding[name])} for name in callers}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="ingest,search,rag")
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--small-documents", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    setup_django("raptorflow_bench_documents")
    from django.conf import settings

    from accounts.services import user_create_with_personal_organization

    settings.STORAGES["documents"]["OPTIONS"]["location"] = str(ROOT / ".data" / "bench-documents")
    rng = np.random.default_rng(16)
    user = user_create_with_personal_organization(email=f"documents-bench-{time.time_ns()}@example.com")
    organization = user.default_organization
    results = {}
    if "ingest" in parts:
        results |= bench_ingest(user, organization, args, rng)
    if "rag" in parts:
        results |= bench_rag(user, organization, args, rng)
    if "search" in parts:
        # A caller of their own: exactly the synthetic chunks are readable.
        searcher = user_create_with_personal_organization(email=f"documents-search-{time.time_ns()}@example.com")
        results |= bench_search(searcher, searcher.default_organization, args, rng)
    write_results("documents", {"args": vars(args), **results})


if __name__ == "__main__":
    main()
