"""The per-model HNSW indexes on search_messageembedding.

Each embedding model gets its own HNSW cosine index on the expression
`(embedding::vector(<dims>))`, partial on `model = '<name>'` (pgvector's recommendation when
one column holds vectors of several sizes). The default local model's index is created by
migration search.0001; `reindex_embeddings` / `backfill_embeddings` create the index of any
other model. search.selectors.hnsw_order_expression() is the matching query expression: the
planner can use an index only when the query orders by that exact expression.
"""

import hashlib
import re

from django.db import connection

from search.models import HNSW_MAX_DIMENSIONS, MessageEmbedding

# HNSW build parameters (pgvector's defaults, measured in SPEC §7).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")


def validate_model_name(model: str) -> str:
    """Model names are inlined in index DDL (DDL takes no bind parameters), so only a
    conservative character set is accepted."""
    if not _MODEL_NAME.match(model):
        raise ValueError(f"Unsupported embedding model name {model!r}")
    return model


def index_name(model: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:32]
    digest = hashlib.sha256(model.encode()).hexdigest()[:8]
    return f"embedding_hnsw_{slug}_{digest}"


def create_index_sql(model: str, dimensions: int, *, concurrently: bool) -> str:
    validate_model_name(model)
    if not 1 <= int(dimensions) <= HNSW_MAX_DIMENSIONS:
        raise ValueError(f"An HNSW index takes 1..{HNSW_MAX_DIMENSIONS} dimensions, not {dimensions}")
    table = connection.ops.quote_name(MessageEmbedding._meta.db_table)
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
    """Creates the model's HNSW index unless it exists; True when it was created.
    CONCURRENTLY (no write lock on the table) unless we are inside a transaction."""
    if index_exists(model):
        return False
    _execute_ddl(create_index_sql(model, dimensions, concurrently=not connection.in_atomic_block))
    return True


def drop_index(model: str) -> None:
    concurrently = "CONCURRENTLY " if not connection.in_atomic_block else ""
    _execute_ddl(f"DROP INDEX {concurrently}IF EXISTS {index_name(validate_model_name(model))}")


def _execute_ddl(sql: str) -> None:
    with connection.cursor() as cursor:
        if not connection.in_atomic_block:
            cursor.execute(sql)
            return
        # Inside a transaction that already wrote rows, PostgreSQL refuses index DDL while
        # deferred foreign-key checks are pending: run them first, then defer again (Django's
        # foreign keys are DEFERRABLE INITIALLY DEFERRED).
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(sql)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
