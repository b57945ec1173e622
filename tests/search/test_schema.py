"""The seven search endpoints in the OpenAPI schema, typed precisely enough for a generated
TypeScript client (no property without a type)."""

import pytest
from drf_spectacular.generators import SchemaGenerator

OPERATIONS = {
    ("/api/search/embed-text", "post"): ("200", "EmbedTextOutput", "EmbedTextInputRequest"),
    ("/api/search/embed-and-store", "post"): ("201", "Embedding", "EmbedAndStoreInputRequest"),
    ("/api/search/semantic-search", "post"): ("200", "SearchResults", "SemanticSearchInputRequest"),
    ("/api/search/semantic-search/global", "get"): ("200", "SearchResults", None),
    ("/api/search/embedding-stats", "get"): ("200", "EmbeddingStats", None),
    ("/api/search/embeddings/{id}", "delete"): ("204", None, None),
    ("/api/search/batch-embed", "post"): ("200", "BatchEmbedOutput", "BatchEmbedInputRequest"),
}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _ref(node):
    return node["$ref"].rsplit("/", 1)[-1] if node and "$ref" in node else None


def _untyped(node, schemas, path="", seen=None) -> list[str]:
    """Paths of schema nodes a TypeScript generator would turn into `unknown`."""
    seen = seen if seen is not None else set()
    if not isinstance(node, dict):
        return []
    if "$ref" in node:
        name = _ref(node)
        if name in seen:
            return []
        seen.add(name)
        return _untyped(schemas[name], schemas, f"{path}->{name}", seen)
    if not ({"type", "oneOf", "allOf", "anyOf", "enum"} & set(node)):
        return [path or "/"]
    found = []
    for name, child in node.get("properties", {}).items():
        found += _untyped(child, schemas, f"{path}.{name}", seen)
    if isinstance(node.get("items"), dict):
        found += _untyped(node["items"], schemas, f"{path}[]", seen)
    for key in ("oneOf", "allOf", "anyOf"):
        for child in node.get(key, []):
            found += _untyped(child, schemas, path, seen)
    return found


@pytest.mark.parametrize(("path", "method"), list(OPERATIONS))
def test_every_search_endpoint_is_documented_and_fully_typed(schema, path, method):
    status, response_component, request_component = OPERATIONS[(path, method)]
    operation = schema["paths"][path][method]
    response = operation["responses"][status]
    assert _ref(response.get("content", {}).get("application/json", {}).get("schema")) == response_component
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    assert _ref(body) == request_component
    schemas = schema["components"]["schemas"]
    for component in filter(None, (response_component, request_component)):
        assert _untyped(schemas[component], schemas, component) == []


def test_search_parameters_are_documented(schema):
    post = {p["name"] for p in schema["paths"]["/api/search/semantic-search"]["post"]["parameters"]}
    get = {p["name"]: p for p in schema["paths"]["/api/search/semantic-search/global"]["get"]["parameters"]}
    assert post == {"conversation_id"}
    assert set(get) == {"query", "limit", "mode", "min_similarity"}
    assert get["query"]["required"] is True
    assert (get["limit"]["schema"]["minimum"], get["limit"]["schema"]["maximum"]) == (1, 50)
