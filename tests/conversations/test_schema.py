"""The nine endpoints in the OpenAPI schema, typed precisely enough for a generated
TypeScript client (no property without a type)."""

import pytest
from drf_spectacular.generators import SchemaGenerator

OPERATIONS = {
    ("/api/conversations", "post"): ("201", "Conversation"),
    ("/api/conversations", "get"): ("200", "PaginatedConversationList"),
    ("/api/conversations/{id}", "get"): ("200", "Conversation"),
    ("/api/conversations/{id}", "patch"): ("200", "Conversation"),
    ("/api/conversations/{id}", "delete"): ("204", None),
    ("/api/conversations/{id}/messages", "post"): ("201", "Message"),
    ("/api/conversations/{id}/messages", "get"): ("200", "PaginatedMessageList"),
    ("/api/conversations/{id}/messages/recent", "get"): ("200", "MessageRecent"),
    ("/api/conversations/search/by-title", "get"): ("200", "PaginatedConversationList"),
    ("/api/conversations/{id}/messages/{message_id}/feedback", "put"): ("201", "Message"),
    ("/api/conversations/{id}/messages/{message_id}/feedback", "delete"): ("204", None),
    ("/api/conversations/{id}/shares", "post"): ("201", "CreatedShare"),
    ("/api/conversations/{id}/shares", "get"): ("200", "PaginatedShareList"),
    ("/api/conversations/{id}/shares/{share_id}", "delete"): ("204", None),
    ("/api/shares/{token}", "get"): ("200", "SharedConversation"),
}
OWN_COMPONENTS = [
    "Conversation",
    "Message",
    "MessageRecent",
    "Usage",
    "JsonValue",
    "ConversationCreateInputRequest",
    "ConversationUpdateInputRequest",
    "MessageCreateInputRequest",
    "Feedback",
    "FeedbackInputRequest",
    "Share",
    "CreatedShare",
    "ShareCreateInputRequest",
    "SharedConversation",
    "SharedMessage",
]


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _response_component(operation, status):
    response = operation["responses"][status]
    if "content" not in response:
        return None
    return response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]


@pytest.mark.parametrize(("path", "method"), list(OPERATIONS))
def test_every_endpoint_is_documented_with_its_response(schema, path, method):
    status, component = OPERATIONS[(path, method)]

    operation = schema["paths"][path][method]

    assert _response_component(operation, status) == component


def test_message_post_documents_the_idempotency_key_and_the_repeat(schema):
    operation = schema["paths"]["/api/conversations/{id}/messages"]["post"]

    assert {"name": "Idempotency-Key", "in": "header"}.items() <= next(
        p for p in operation["parameters"] if p["name"] == "Idempotency-Key"
    ).items()
    assert _response_component(operation, "200") == "Message"


def test_list_documents_its_filters_and_pagination(schema):
    names = {p["name"] for p in schema["paths"]["/api/conversations"]["get"]["parameters"]}

    assert {"status", "agent_type", "pinned", "tag", "pinned_first", "cursor", "page_size"} <= names


def test_share_endpoints_document_their_errors(schema):
    create = schema["paths"]["/api/conversations/{id}/shares"]["post"]
    read = schema["paths"]["/api/shares/{token}"]["get"]

    assert {"400", "401", "403", "404", "429"} <= set(create["responses"])
    assert {"404", "429"} <= set(read["responses"])
    # Open to anyone with the link; a bearer token is optional (organization links).
    assert {} in read["security"] and {"bearerAuth": []} in read["security"]


def _untyped(node, path="") -> list[str]:
    """Paths of schema nodes that a TypeScript generator would turn into `unknown`."""
    if not isinstance(node, dict):
        return []
    if not ({"type", "$ref", "oneOf", "allOf", "anyOf", "enum"} & set(node)):
        return [path or "/"]
    found = []
    for name, child in node.get("properties", {}).items():
        found += _untyped(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _untyped(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _untyped(node["additionalProperties"], f"{path}{{}}")
    for key in ("oneOf", "allOf", "anyOf"):
        for index, child in enumerate(node.get(key, [])):
            found += _untyped(child, f"{path}<{key}{index}>")
    return found


@pytest.mark.parametrize("component", OWN_COMPONENTS)
def test_components_have_no_untyped_parts(schema, component):
    assert _untyped(schema["components"]["schemas"][component], component) == []
