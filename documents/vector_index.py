"""The per-model HNSW indexes on documents_chunkembedding, made like the messages' ones
(search.vector_index): an HNSW cosine index on `(embedding::vector(<dims>))`, partial on
`model = '<name>'`. The default local model's index is created by migration documents.0001;
documents.services.unscoped_ensure_chunk_index (called by ingestion, backfill and reindex)
creates any other model's before its first vector is written."""

import hashlib
import re

from django.db import connection

from documents.models import ChunkEmbedding
from search.models import HNSW_MAX_DIMENSIONS
from search.vector_index import HNSW_EF_CONSTRUCTION, HNSW_M, validate_model_name


def index_name(model: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:32]
    digest = hashlib.sha256(model.encode()).hexdigest()[:8]
    return f"chunk_hnsw_{slug}_{digest}"


def create_index_sql(model: str, dimensions: int, *, concurrently: bool) -> str:
    validate_model_name(model)
    if not 1 <= int(dimensions) <= HNSW_MAX_DIMENSIONS:
        raise ValueError(f"An HNSW index takes 1..{HNSW_MAX_DIMENSIONS} dimensions, not {dimensions}")
    table = connection.ops.quote_name(ChunkEmbedding._meta.db_table)
    return (
        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS {index_name(model)} "
        f"ON {table} USING hnsw ((embedding::vector({int(dimensions)})) vector_cosine_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
        f"WHERE model = '{model}'"
    )


def index_exists(model: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [index_name(model)])
        return cursor.fetchone() is not None


def ensure_index(model: str, dimensions: int) -> bool:
    """Creates the model's HNSW index on the chunk vectors unless it exists; True when it
    was created. CONCURRENTLY unless inside a transaction (then after the deferred
    foreign-key checks, which PostgreSQL wants done before index DDL)."""
    if index_exists(model):
        return False
    sql = create_index_sql(model, dimensions, concurrently=not connection.in_atomic_block)
    with connection.cursor() as cursor:
        if not connection.in_atomic_block:
            cursor.execute(sql)
            return True
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(sql)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    return True


def drop_index(model: str) -> None:
    concurrently = "CONCURRENTLY " if not connection.in_atomic_block else ""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {concurrently}IF EXISTS {index_name(validate_model_name(model))}")
