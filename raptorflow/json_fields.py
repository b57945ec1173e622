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
        return value


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
# precisely instead of falling back to `unknown`.
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
            {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
            {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/JsonValue"}},
        ],
    },
)


class MetadataFieldSchema(OpenApiSerializerFieldExtension):
    target_class = MetadataField

    def map_serializer_field(self, auto_schema, direction):
        auto_schema.registry.register_on_missing(_JSON_VALUE)
        return {"type": "object", "additionalProperties": _JSON_VALUE.ref}
