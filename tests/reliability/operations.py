"""The operations of the OpenAPI schema the app serves, for the hostile-input tests: read
once from the same generator as /api/schema, so a new endpoint is covered without anyone
adding it to a list. Also the request helpers those tests share: a path with known ids,
raw bytes as a JSON body (lone surrogates stay `\\ud800` escapes), a query string sent as
given, and the check that an answer is never a server error and always JSON-shaped."""

import json
from dataclasses import dataclass
from functools import cache
from urllib.parse import quote

from drf_spectacular.generators import SchemaGenerator

# Served by drf-spectacular itself (schema, Swagger UI, ReDoc): not the API's own views.
DOCS_PATHS = {"/api/schema", "/docs", "/redoc"}
# Views that take query parameters they cannot list, or are not built on the API's base
# views: the Google redirect target (Google adds scope, authuser, prompt, hd), health
# probes, the index, and Razorpay's webhook (Razorpay's own request).
UNCHECKED_QUERY = {
    ("GET", "/api/auth/google/callback"),
    ("GET", "/health"),
    ("GET", "/"),
    ("POST", "/api/billing/webhook"),
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    definition: dict

    def __str__(self):
        return f"{self.method} {self.path}"

    @property
    def query_parameters(self) -> list[str]:
        return [p["name"] for p in self.definition.get("parameters", []) if p["in"] == "query"]

    @property
    def json_body(self) -> dict | None:
        """The request body's JSON schema, if the operation takes one."""
        content = self.definition.get("requestBody", {}).get("content", {})
        return content.get("application/json", {}).get("schema") if "application/json" in content else None

    @property
    def signed_in(self) -> bool:
        return any("bearerAuth" in requirement for requirement in self.definition.get("security", []))

    def documents(self, status: int) -> bool:
        return str(status) in self.definition.get("responses", {})


@cache
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


@cache
def operations() -> list[Operation]:
    return [
        Operation(method.upper(), path, definition)
        for path, item in schema()["paths"].items()
        for method, definition in item.items()
        if path not in DOCS_PATHS
    ]


def json_operations() -> list[Operation]:
    return [operation for operation in operations() if operation.json_body is not None]


def list_operations() -> list[Operation]:
    return [operation for operation in operations() if "cursor" in operation.query_parameters]


def get_operations() -> list[Operation]:
    return [operation for operation in operations() if operation.method == "GET"]


def resolve_schema(node: dict) -> dict:
    ref = node.get("$ref")
    if ref:
        return schema()["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return node


def body_properties(operation: Operation) -> dict:
    return resolve_schema(operation.json_body or {}).get("properties", {})


PATH_VALUES = {
    ("/api/conversations/", "id"): "conversation_id",
    ("/api/conversations/", "message_id"): "message_id",
    ("/api/conversations/", "reply_id"): "reply_id",
    ("/api/conversations/", "share_id"): "share_id",
    ("/api/search/embeddings/", "id"): "embedding_id",
    ("/api/organizations/current/members/", "user_id"): "teammate_id",
    ("/api/organizations/current/invitations/", "id"): "invitation_id",
    ("/api/organizations/current/domains/", "id"): "domain_claim_id",
    ("/api/documents/", "id"): "document_id",
}


def fill_path(operation: Operation, data) -> str:
    """The operation's path with the ids of `data` (reliability's ApiData) in it."""
    path = operation.path
    for (prefix, name), attribute in PATH_VALUES.items():
        if path.startswith(prefix) and "{" + name + "}" in path:
            path = path.replace("{" + name + "}", getattr(data, attribute))
    return path.replace("{provider}", "openai").replace("{token}", "no-such-invitation-token")


def json_text(value) -> str:
    """JSON with every non-ASCII character escaped: a lone surrogate goes out as `\\ud800`,
    as a hostile client would send it (it has no UTF-8 form)."""
    return json.dumps(value, ensure_ascii=True)


def _percent(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def query_string(params: list[tuple[str, str]]) -> str:
    """Percent-encoded as given; lone surrogates become the bytes UTF-8 would give them."""
    return "&".join(f"{_percent(name)}={_percent(value)}" for name, value in params)


def required_query(operation: Operation) -> list[tuple[str, str]]:
    """A plain value for each required query parameter (a search's `q`), so that a request
    is refused for what a test puts in it, not for what it left out."""
    parameters = operation.definition.get("parameters", [])
    return [(p["name"], "q4") for p in parameters if p["in"] == "query" and p.get("required")]


def call(client, operation: Operation, data, *, query: list[tuple[str, str]] = (), body: str | bytes | None = None):
    path = fill_path(operation, data)
    given = {name for name, _ in query}
    query = [item for item in required_query(operation) if item[0] not in given] + list(query)
    if query:
        path = f"{path}?{query_string(list(query))}"
    kwargs = {}
    if body is not None:
        kwargs = {"data": body.encode() if isinstance(body, str) else body, "content_type": "application/json"}
    return client.generic(operation.method, path, **kwargs)


def is_unconfigured_third_party(operation: Operation, response) -> bool:
    """A documented 503 saying the third party (Google, Razorpay, a chat model) is
    deliberately unconfigured here."""
    return response.status_code == 503 and operation.documents(503) and error_code(response) == "not_configured"


def error_code(response) -> str | None:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def assert_no_server_error(operation: Operation, response) -> None:
    """Never a 5xx (but a documented unconfigured third party), and every 4xx in the one
    JSON error shape."""
    status = response.status_code
    assert status < 500 or is_unconfigured_third_party(operation, response), (
        f"{operation}: {status} {response.content[:500]!r}"
    )
    if status >= 400:
        assert response["Content-Type"].startswith("application/json"), f"{operation}: {status} not JSON"
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"], f"{operation}: {error}"
        assert isinstance(error["message"], str), f"{operation}: {error}"
        assert isinstance(error.get("fields", {}), dict), f"{operation}: {error}"
