"""JSON-object fields of the API (conversation metadata, organization settings): a size
limit, and a schema precise enough that a generated TypeScript client needs no `unknown`."""

import json

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers


class MetadataField(serializers.JSONField):
    """The client's own JSON object, at most settings.METADATA_MAX_BYTES once serialized."""

    default_error_messages = {
        "not_object": "Must be a JSON object.",
        "too_large": "Must be at most {max_bytes} bytes once serialized.",
        "nul_character": "Must not contain the NUL character (\\u0000), which PostgreSQL cannot store.",
        "arrays_too_deep": "Arrays may hold arrays at most {depth} deep (an object in between starts over).",
    }

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_object")
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > settings.METADATA_MAX_BYTES:
            self.fail("too_large", max_bytes=settings.METADATA_MAX_BYTES)
        if _has_nul(value):
            self.fail("nul_character")
        if _array_run(value) > MAX_ARRAY_RUN:
            self.fail("arrays_too_deep", depth=MAX_ARRAY_RUN)
        return value


# TypeScript cannot name a type that holds itself through arrays alone (`type J = J[] | …`
# reached through `components["schemas"][…]`, as openapi-typescript writes it, is "referenced
# in its own type annotation"), so the schema spells arrays of arrays out to this depth, and
# the server holds metadata to what the schema says.
MAX_ARRAY_RUN = 3


def _array_run(value, run: int = 0) -> int:
    """The deepest run of arrays directly inside arrays; an object resets the count."""
    if isinstance(value, list):
        return max([run + 1] + [_array_run(item, run + 1) for item in value])
    if isinstance(value, dict):
        return max([0] + [_array_run(item, 0) for item in value.values()])
    return 0


def _has_nul(value) -> bool:
    """A NUL character in any key or string (jsonb refuses it: a 500 otherwise)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


# Any JSON value, described recursively so a generated TypeScript client types metadata
# precisely instead of falling back to `unknown`. Recursion passes through JsonObject (an
# object type, which TypeScript resolves lazily); arrays of arrays are spelled out to
# MAX_ARRAY_RUN levels.
def _json_array(depth: int) -> dict:
    scalars_and_object = [
        {"type": "string"},
        {"type": "number"},
        {"type": "boolean"},
        {"$ref": "#/components/schemas/JsonObject"},
    ]
    inner = scalars_and_object + ([_json_array(depth - 1)] if depth > 1 else [])
    return {"type": "array", "items": {"nullable": True, "oneOf": inner}}


_JSON_OBJECT = ResolvedComponent(
    name="JsonObject",
    type=ResolvedComponent.SCHEMA,
    object="JsonObject",
    schema={"type": "object", "additionalProperties": {"$ref": "#/components/schemas/JsonValue"}},
)
_JSON_VALUE = ResolvedComponent(
    name="JsonValue",
    type=ResolvedComponent.SCHEMA,
    object="JsonValue",
    schema={
        "nullable": True,
        "oneOf": [
            {"type": "string"},
            {"type": "number"},
            {"type": "boolean"},
            _json_array(MAX_ARRAY_RUN),
            {"$ref": "#/components/schemas/JsonObject"},
        ],
    },
)


class MetadataFieldSchema(OpenApiSerializerFieldExtension):
    target_class = MetadataField

    def map_serializer_field(self, auto_schema, direction):
        auto_schema.registry.register_on_missing(_JSON_VALUE)
        auto_schema.registry.register_on_missing(_JSON_OBJECT)
        return {"type": "object", "additionalProperties": _JSON_VALUE.ref}
