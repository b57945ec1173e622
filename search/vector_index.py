"""The per-model HNSW indexes on every embedded table (search.vector_plan.VectorTable):
message vectors (search_messageembedding) and document chunk vectors.

Each embedding model gets, on each table, its own HNSW cosine index on the expression
`(embedding::vector(<dims>))`, partial on `model = '<name>'` (pgvector's recommendation when
one column holds vectors of several sizes). The default local model's indexes are created by
the migrations (search.0001, documents.0001); `reindex_embeddings` / `backfill_embeddings`
and document ingestion create any other model's. search.vector_plan.order_expression() is
the matching query expression: the planner can use an index only when the query orders by
that exact expression. `table` defaults to the message vectors.
"""

import hashlib
import logging
import re

from django.db import connection

from search.models import HNSW_MAX_DIMENSIONS
from search.vector_plan import MESSAGE_VECTORS, VectorTable, order_sql

logger = logging.getLogger(__name__)

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


def index_name(model: str, *, table: VectorTable = MESSAGE_VECTORS) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:32]
    digest = hashlib.sha256(model.encode()).hexdigest()[:8]
    return f"{table.index_prefix}_{slug}_{digest}"


def create_index_sql(model: str, dimensions: int, *, concurrently: bool, table: VectorTable = MESSAGE_VECTORS) -> str:
    validate_model_name(model)
    if not 1 <= int(dimensions) <= HNSW_MAX_DIMENSIONS:
        raise ValueError(f"An HNSW index takes 1..{HNSW_MAX_DIMENSIONS} dimensions, not {dimensions}")
    quote = connection.ops.quote_name
    return (
        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS {index_name(model, table=table)} "
        f"ON {quote(table.db_table)} USING hnsw ({order_sql(table, dimensions)} vector_cosine_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
        f"WHERE {quote(table.model_column)} = '{model}'"
    )


def _index_valid(name: str) -> bool | None:
    """Whether the index is usable; None when there is none. A CONCURRENTLY build that was
    interrupted (a deploy, a cancelled job, a lost connection) leaves an INVALID index that
    the planner never uses but IF NOT EXISTS takes for done."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
            [name],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


def index_exists(model: str, *, table: VectorTable = MESSAGE_VECTORS) -> bool:
    """True when the model's index on `table` exists and is valid."""
    return _index_valid(index_name(model, table=table)) is True


def ensure_index(model: str, dimensions: int, *, table: VectorTable = MESSAGE_VECTORS) -> bool:
    """Creates the model's HNSW index on `table` unless a valid one exists (an invalid one
    left by an interrupted build is dropped and built again); True when it was created.
    CONCURRENTLY (no write lock on the table) unless we are inside a transaction."""
    valid = _index_valid(index_name(model, table=table))
    if valid:
        return False
    if valid is False:
        logger.warning("Rebuilding the invalid HNSW index %s (an interrupted build)", index_name(model, table=table))
        drop_index(model, table=table)
    _execute_ddl(create_index_sql(model, dimensions, concurrently=not connection.in_atomic_block, table=table))
    return True


def drop_index(model: str, *, table: VectorTable = MESSAGE_VECTORS) -> None:
    concurrently = "CONCURRENTLY " if not connection.in_atomic_block else ""
    _execute_ddl(f"DROP INDEX {concurrently}IF EXISTS {index_name(validate_model_name(model), table=table)}")


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
