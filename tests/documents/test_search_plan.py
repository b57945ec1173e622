"""Document search plans like message search (search.vector_plan through
documents.search_plan): exact for organizations with few readable chunk vectors, the
model's shared HNSW index above SEARCH_EXACT_MAX_ROWS, the organization's own partial index
once one is built — proved with EXPLAIN — and k rows of what the caller may read either way.
The plan decision, both rankings of hybrid mode and the winners' rows are one statement.

The thresholds are lowered (exact up to 300 vectors, an own index above 300) so the
organizations here hold hundreds of synthetic chunk vectors, not tens of thousands."""

import uuid

import numpy as np
import pytest
from django.contrib.postgres.search import SearchVector
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.services import user_create_with_personal_organization
from documents.models import ChunkEmbedding, Document, DocumentChunk
from documents.search_plan import CHUNK_VECTORS
from documents.selectors import rank_chunks
from search import tenant_indexes, vector_index
from search.models import TenantVectorIndex
from search.providers import active_spec
from tests.synthetic_vectors import DIMS, SMALL_THRESHOLD, clustered, random_centers

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("small_vector_thresholds")]

THRESHOLD = SMALL_THRESHOLD
K = 10


@pytest.fixture
def model():
    return active_spec().model


_CENTERS = random_centers(12, seed=16)


def _vectors(count: int, seed: int) -> np.ndarray:
    return clustered(_CENTERS, count, seed=seed)


class Library:
    """An organization's chunks: `vectors[i]` is chunk `ids[i]`'s, `private[i]` whether it
    belongs to a document only its uploader (`owner`) may read."""

    def __init__(self, owner, organization, ids, vectors, private):
        self.owner, self.organization = owner, organization
        self.ids, self.vectors, self.private = ids, vectors, np.array(private)

    def true_top_k(self, query: np.ndarray, *, reader_owns_private: bool, k: int = K) -> list:
        similarities = self.vectors @ query
        readable = np.ones(len(self.ids), bool) if reader_owns_private else ~self.private
        order = [i for i in np.argsort(-similarities, kind="stable") if readable[i]]
        return [self.ids[i] for i in order[:k]]


def _document(owner, organization, visibility: str, title: str) -> Document:
    return Document.objects.create(
        organization=organization, owner=owner, title=title, visibility=visibility, filename=f"{title}.txt",
        kind="text", content_type="text/plain", size_bytes=1, sha256=uuid.uuid4().hex * 2,
        file=f"synthetic/{uuid.uuid4()}", status="ready",
    )


def _library(email: str, rows: int, model: str, seed: int, *, private_share: float = 0.0, texts=None) -> Library:
    """An organization whose owner uploaded `rows` chunks (synthetic vectors stored through
    the ORM: ingestion is not what these tests are about), `private_share` of them in a
    private document, the rest in one shared with the organization."""
    owner = user_create_with_personal_organization(email=email)
    organization = owner.default_organization
    shared = _document(owner, organization, "organization", "Shared guide")
    private = _document(owner, organization, "private", "Private notes")
    vectors = _vectors(rows, seed)
    is_private = [index < rows * private_share for index in range(rows)]
    chunks = DocumentChunk.objects.bulk_create(
        DocumentChunk(
            document=private if mine else shared, organization=organization, owner=owner,
            visibility="private" if mine else "organization", index=index,
            text=(texts or {}).get(index, f"synthetic passage {index}"), char_start=0, char_end=9, token_count=3,
        )
        for index, mine in enumerate(is_private)
    )
    DocumentChunk.objects.filter(organization=organization).update(search_vector=SearchVector("text", config="english"))
    ChunkEmbedding.objects.bulk_create(
        ChunkEmbedding(
            chunk=chunk, document_id=chunk.document_id, organization=organization, owner=owner,
            visibility=chunk.visibility, model=model, dimensions=DIMS, embedding=vector,
        )
        for chunk, vector in zip(chunks, vectors, strict=True)
    )
    return Library(owner, organization, [chunk.id for chunk in chunks], vectors, is_private)


def _teammate_of(library: Library):
    from accounts.models import Membership, Role

    user = user_create_with_personal_organization(email=f"teammate-{uuid.uuid4().hex[:8]}@synthetic.test")
    Membership.objects.create(organization=library.organization, user=user, role=Role.MEMBER)
    return user


def _analyze():
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE documents_chunkembedding")


def _build(library: Library, model: str) -> str:
    return tenant_indexes.unscoped_index_build(
        table=CHUNK_VECTORS, model=model, dimensions=DIMS, scope=(library.organization.pk,)
    )


def _rank(library: Library, query: np.ndarray, model: str, *, user=None, limit: int = K, **kwargs):
    return rank_chunks(
        user=user or library.owner, organization=library.organization, query=kwargs.pop("text", ""),
        query_vector=query.tolist(), model=model, limit=limit, **kwargs,
    )


def _statements(captured) -> list[str]:
    # (Leaving out the per-process read of the ready tenant indexes.)
    return [q["sql"] for q in captured.captured_queries if "search_tenantvectorindex" not in q["sql"]]


def _recall(hits, truth) -> float:
    return len({hit.chunk_id for hit in hits} & set(truth)) / len(truth)


def test_a_small_library_is_searched_exactly_in_one_statement(model):
    library = _library("small@synthetic.test", 120, model, seed=1, private_share=0.25)
    teammate = _teammate_of(library)
    query = _vectors(1, seed=90)[0]

    with CaptureQueriesContext(connection) as captured:
        hits, plan = _rank(library, query, model)

    assert plan == "exact"
    assert len(_statements(captured)) == 1, _statements(captured)
    assert [hit.chunk_id for hit in hits] == library.true_top_k(query, reader_owns_private=True)
    # The teammate reads the shared document only: still exact, still k of theirs.
    hits, _ = _rank(library, query, model, user=teammate)
    assert [hit.chunk_id for hit in hits] == library.true_top_k(query, reader_owns_private=False)


def test_hybrid_search_is_one_statement_and_reports_a_text_only_hits_cosine_similarity(model):
    library = _library("hybrid@synthetic.test", 120, model, seed=2, texts={7: "The zebracorn mascot brief"})
    # Chunk 7's vector barely related to the query (cosine 0.01: ranked about halfway, far
    # below the vector side's 30 candidates): only the full-text side finds it.
    query = _vectors(1, seed=91)[0]
    orthogonal = np.random.default_rng(8).standard_normal(DIMS)
    orthogonal -= (orthogonal @ query) * query
    library.vectors[7] = 0.01 * query + np.sqrt(1 - 0.01**2) * orthogonal / np.linalg.norm(orthogonal)
    ChunkEmbedding.objects.filter(chunk_id=library.ids[7]).update(embedding=library.vectors[7].tolist())
    assert library.ids[7] not in library.true_top_k(query, reader_owns_private=True, k=30)

    with CaptureQueriesContext(connection) as captured:
        hits, plan = _rank(library, query, model, text="zebracorn", mode="hybrid")

    assert plan == "exact" and len(_statements(captured)) == 1, _statements(captured)
    assert len(hits) == K
    found = {hit.chunk_id: hit for hit in hits}
    assert library.ids[7] in found, "the full-text match is fused in"
    assert found[library.ids[7]].similarity == pytest.approx(0.01, abs=1e-4)
    assert found[library.ids[7]].title == "Shared guide"


def test_a_text_match_without_a_vector_of_the_model_is_left_out_while_a_reindex_catches_up(model):
    texts = {3: "The zebracorn launch checklist", 4: "Another zebracorn launch note"}
    library = _library("reindexing@synthetic.test", 60, model, seed=9, texts=texts)
    # Chunk 3 has only a vector of the next model so far (the reindex has not reached it).
    ChunkEmbedding.objects.filter(chunk_id=library.ids[3]).update(model="next-model")
    query = library.vectors[4]

    hits, _ = _rank(library, query, model, text="zebracorn launch", mode="hybrid")

    found = [hit.chunk_id for hit in hits]
    assert len(found) == K and found[0] == library.ids[4]
    assert library.ids[3] not in found


def test_a_large_library_gets_k_readable_rows_with_high_recall_with_and_without_its_own_index(model):
    _library("neighbour@synthetic.test", 900, model, seed=3)
    indexed = _library("indexed@synthetic.test", 700, model, seed=4, private_share=0.2)
    unindexed = _library("unindexed@synthetic.test", 650, model, seed=5, private_share=0.2)
    assert _build(indexed, model) == tenant_indexes.CREATED
    _analyze()
    queries = _vectors(6, seed=92)

    for library, expected_plan in ((indexed, "tenant_hnsw"), (unindexed, "hnsw")):
        teammate = _teammate_of(library)
        recalls = []
        for query in queries:
            for user, owns in ((library.owner, True), (teammate, False)):
                hits, plan = _rank(library, query, model, user=user)
                assert plan == expected_plan
                assert len(hits) == K
                assert [hit.similarity for hit in hits] == sorted((hit.similarity for hit in hits), reverse=True)
                readable = set(library.true_top_k(query, reader_owns_private=owns, k=len(library.ids)))
                assert {hit.chunk_id for hit in hits} <= readable, "never a chunk the caller may not read"
                recalls.append(_recall(hits, library.true_top_k(query, reader_owns_private=owns)))
        assert np.mean(recalls) >= 0.95, (expected_plan, recalls)


def test_the_statement_uses_the_organizations_own_index_in_one_round_trip(model):
    _library("neighbour@synthetic.test", 900, model, seed=6)
    library = _library("large@synthetic.test", 700, model, seed=7)
    assert _build(library, model) == tenant_indexes.CREATED
    _analyze()
    query = _vectors(1, seed=93)[0]

    with CaptureQueriesContext(connection) as captured:
        _rank(library, query, model)

    statements = _statements(captured)
    assert len(statements) == 1, statements  # scan settings, ranking and reset in one message
    parts = statements[0].split("; ")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(parts[0])  # the scan settings
        cursor.execute("EXPLAIN " + parts[1])
        explained = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    own = tenant_indexes.index_name(table=CHUNK_VECTORS, model=model, scope=(library.organization.pk,))
    assert own in explained, explained
    assert vector_index.index_name(model, table=CHUNK_VECTORS) not in explained, explained


def test_ingestion_that_carries_an_organization_over_the_threshold_builds_its_own_index(
    settings, model, owner_client, org, upload
):
    settings.SEARCH_TENANT_INDEX_MIN_ROWS = 3
    paragraphs = "\n\n".join(f"## Section {i}\n\n" + ("Campaign budget and audience notes. " * 60) for i in range(6))

    response = upload(owner_client, "plan.md", paragraphs.encode(), visibility="organization")

    assert response.status_code == 201
    assert DocumentChunk.objects.filter(organization=org).count() > 3
    index = TenantVectorIndex.objects.get(table=CHUNK_VECTORS.db_table, organization=org)
    assert index.state == TenantVectorIndex.State.READY and index.model == model and index.owner_id is None
    body = {"query": "campaign budget", "limit": 50}
    searched = owner_client.post("/api/search/documents", body, format="json").json()
    assert len(searched["results"]) == DocumentChunk.objects.filter(organization=org).count()
