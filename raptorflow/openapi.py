"""Error responses in the OpenAPI schema (/api/schema).

Every error leaves in one shape, built by raptorflow/errors.py. `AutoSchema` documents that
shape for the statuses an operation answers by its very kind, so a client generated from the
schema has a typed error for each of them:
- 400 when it takes a body or query parameters (validation, malformed JSON), or refuses
  unknown query parameters (raptorflow.api.KnownQueryParametersOnly: nearly all do);
- 401 when it wants a bearer token;
- 404 when its path names something (outside the caller's reach looks the same as missing);
- 413 and 415 when it takes a body (size limit, JSON only);
- 429 when a rate limit applies (signed-in callers, and the sign-in and token endpoints);
- 503 on every API path: the database or the cache may be unreachable (raptorflow.middleware).
Input serializers built on raptorflow.api.StrictSerializer refuse unknown fields, so their
request schemas say `additionalProperties: false`.

What only a view knows it may answer (402 quota, 403 role, 409 state, 502/503 upstream, a
404 for an id in the body, a 401 for a token in the body) the view lists in its own
@extend_schema responses with `error_responses(...)`.

Two rules keep the schema fit for generated clients (clients/typescript generates its types
with openapi-typescript's default settings), and apply to every endpoint, also those added
later, without anything in the view:
- operationId is `resource_action` from the path and method alone (`operation_id()`), so
  generated method names are predictable; an `operation_id=` in a view is overridden.
- A request field with a default is optional in what the client sends. openapi-typescript
  makes every property that has a `default` required (its `defaultNonNullable`, on by
  default), so request schemas state the default in the description instead.
"""

import json
from functools import cache

from django.conf import settings
from django.urls import resolve, reverse
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.fields import empty

from raptorflow.api import StrictSerializer
from raptorflow.middleware import is_api_path

DESCRIPTIONS = {
    400: "Invalid input: `fields` names each problem.",
    401: "Missing, invalid or expired credentials.",
    402: "The organization's plan quota is exhausted (`limit`, `resets_at`, `quota`).",
    403: "The caller's role in this organization does not allow this.",
    404: "Not found, or outside the caller's reach.",
    409: "The request conflicts with the current state of the resource.",
    413: "The request body is too large (`limit` bytes).",
    415: "The body is not JSON.",
    429: "Rate limited: retry after the Retry-After header's seconds.",
    502: "An upstream service answered with something unusable.",
    503: (
        "A service it depends on is unavailable: an upstream service unconfigured, down or timed out "
        "(`not_configured`, `upstream_unavailable`…), or the database or cache (`database_unavailable`, "
        "`cache_unavailable`); retry after the Retry-After header's seconds."
    ),
}


class ProviderFailureSerializer(serializers.Serializer):
    provider = serializers.CharField()
    reason = serializers.CharField()


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. validation_error, not_found.")
    message = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors by field name.",
    )
    limit = serializers.IntegerField(required=False)
    resets_at = serializers.DateTimeField(required=False)
    quota = serializers.CharField(required=False)
    providers = ProviderFailureSerializer(many=True, required=False)


class ErrorResponseSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


def error_responses(*statuses: int) -> dict:
    """{status: the error response} for an @extend_schema `responses` dict."""
    return {
        status: OpenApiResponse(response=ErrorResponseSerializer, description=DESCRIPTIONS[status])
        for status in statuses
    }


@cache
def _rate_limited_auth_views() -> frozenset:
    """The view classes of the URL names that the sign-in and token limits apply to."""
    views = set()
    for name in settings.RATE_LIMITED_AUTH_VIEWS:
        func = resolve(reverse(name)).func
        views.add(getattr(func, "view_class", getattr(func, "cls", func)))
    return frozenset(views)


ACTIONS = {"POST": "create", "PUT": "update", "PATCH": "partial_update", "DELETE": "destroy"}


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def operation_id(path: str, method: str, *, is_list: bool) -> str:
    """`resource_action`: the path's words without `/api` and its parameters, a collection
    that a parameter narrows to one item named in the singular when more follows, then the
    action (GET list/retrieve, POST create, PUT update, PATCH partial_update, DELETE
    destroy): `conversations_list`, `conversations_retrieve`, `conversation_messages_create`,
    `auth_me_retrieve`, `search_semantic_search_create`."""
    segments = [segment for segment in path.removeprefix("/api/").strip("/").split("/") if segment]
    words = []
    for index, segment in enumerate(segments):
        if segment.startswith("{"):
            continue
        rest = segments[index + 1 :]
        narrowed = bool(rest) and rest[0].startswith("{")
        more_words = any(not later.startswith("{") for later in rest)
        words.append((_singular(segment) if narrowed and more_words else segment).replace("-", "_"))
    action = ("list" if is_list else "retrieve") if method == "GET" else ACTIONS[method]
    return "_".join((words or ["root"]) + [action])


def _strip_defaults(schema: dict) -> None:
    """A request property's `default` moves into its description (see the module docstring)."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop:
            default = prop.pop("default")
            shown = json.dumps(default)
            note = f"Default: `{shown}`."
            prop["description"] = f"{prop['description']} {note}" if prop.get("description") else note


def _require_defaulted_fields(serializer, schema: dict) -> None:
    """A response field with a default is always in the output (DRF writes the default when
    the attribute is missing), so the response schema requires it."""
    fields = getattr(serializer, "fields", {})
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    for name, field in fields.items():
        if field.default is not empty and not field.write_only and name in properties and name not in required:
            required.append(name)
    if required:
        schema["required"] = required


class AutoSchema(SpectacularAutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        operation["operationId"] = operation_id(path, method, is_list=self._answers_a_list(operation))
        for status, response in error_responses(*self._error_statuses(operation)).items():
            if str(status) not in operation["responses"]:
                operation["responses"][str(status)] = self._get_response_for_code(response, str(status))
        return operation

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        if direction == "request" and isinstance(serializer, StrictSerializer):
            schema["additionalProperties"] = False
        if direction == "request":
            _strip_defaults(schema)
        else:
            _require_defaulted_fields(serializer, schema)
        return schema

    def _answers_a_list(self, operation: dict) -> bool:
        """A GET whose success is an array or a page of `results`."""
        if self.method != "GET":
            return False
        if self._is_list_view():
            return True
        success = operation["responses"].get("200", {}).get("content", {}).get("application/json", {})
        return success.get("schema", {}).get("type") == "array"

    def _error_statuses(self, operation: dict) -> list[int]:
        takes_body = "requestBody" in operation
        has_query = any(parameter["in"] == "query" for parameter in operation.get("parameters", []))
        signed_in = any("bearerAuth" in requirement for requirement in operation.get("security", []))
        # raptorflow.api.KnownQueryParametersOnly: an unknown query parameter is a 400 too.
        refuses_query = getattr(self.view, "refuse_unknown_query_parameters", False)
        statuses = []
        if takes_body or has_query or refuses_query:
            statuses.append(400)
        if signed_in:
            statuses.append(401)
        if "{" in self.path:
            statuses.append(404)
        if takes_body:
            statuses += [413, 415]
        if signed_in or type(self.view) in _rate_limited_auth_views():
            statuses.append(429)
        if is_api_path(self.path):
            # raptorflow.middleware answers any API request 503 database_unavailable or
            # cache_unavailable when either is down.
            statuses.append(503)
        return statuses
