"""The schema as the TypeScript client (clients/typescript) generates from it: the committed
copy is what the server serves now, operation ids follow one rule, request fields with a
default are optional, responses say which fields are always there, the streamed reply's
events are typed, and where the schema now states a constraint, the server refuses what it
refuses (and the error names the field)."""

import json
import re
from pathlib import Path

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from raptorflow.openapi import operation_id

COMMITTED = Path(__file__).resolve().parent.parent / "clients" / "typescript" / "openapi.json"
ACTIONS = ("list", "retrieve", "create", "update", "partial_update", "destroy")


@pytest.fixture(scope="module")
def schema():
    # Rendered and parsed as `manage.py spectacular --format openapi-json` writes it.
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated, renderer_context={}))


def _operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_the_committed_schema_is_what_the_server_generates(schema):
    committed = json.loads(COMMITTED.read_text())

    assert committed == schema, (
        "clients/typescript/openapi.json differs from the server's schema: "
        "run clients/typescript/scripts/generate.sh and commit openapi.json and src/schema.ts"
    )


def test_operation_ids_are_unique_and_resource_action(schema):
    ids = [operation["operationId"] for _, _, operation in _operations(schema)]

    assert len(ids) == len(set(ids))
    for operation_id_ in ids:
        assert re.fullmatch(rf"[a-z][a-z0-9_]*_({'|'.join(ACTIONS)})", operation_id_), operation_id_


@pytest.mark.parametrize(
    ("path", "method", "expected"),
    [
        ("/api/conversations", "get", "conversations_list"),
        ("/api/conversations", "post", "conversations_create"),
        ("/api/conversations/{id}", "get", "conversations_retrieve"),
        ("/api/conversations/{id}", "patch", "conversations_partial_update"),
        ("/api/conversations/{id}/messages", "post", "conversation_messages_create"),
        ("/api/conversations/{id}/messages", "get", "conversation_messages_list"),
        ("/api/auth/me", "get", "auth_me_retrieve"),
        ("/api/auth/me", "delete", "auth_me_destroy"),
        ("/api/auth/google/callback", "get", "auth_google_callback_retrieve"),
        ("/api/search/semantic-search", "post", "search_semantic_search_create"),
        ("/api/invitations/{token}/accept", "post", "invitation_accept_create"),
        ("/", "get", "root_retrieve"),
    ],
)
def test_operation_ids_of_the_seed_and_auth_endpoints(schema, path, method, expected):
    assert schema["paths"][path][method]["operationId"] == expected


def test_the_rule_names_endpoints_that_do_not_exist_yet():
    """What endpoints added later will be called, with no operation_id in their view."""
    assert operation_id("/api/conversations/{id}/replies/{reply_id}/events", "GET", is_list=False) == (
        "conversation_reply_events_retrieve"
    )
    assert operation_id("/api/documents/{id}/chunks", "GET", is_list=True) == "document_chunks_list"
    assert operation_id("/api/conversations/{id}/shares/{share_id}", "DELETE", is_list=False) == (
        "conversation_shares_destroy"
    )


def test_request_fields_with_a_default_are_optional_and_have_no_default(schema):
    components = schema["components"]["schemas"]
    semantic_search = components["SemanticSearchInputRequest"]

    assert semantic_search["required"] == ["query"]
    assert "Default: `10`" in semantic_search["properties"]["limit"]["description"]
    for name, component in components.items():
        if name.endswith("Request"):
            for field, prop in component.get("properties", {}).items():
                assert "default" not in prop, f"{name}.{field}"


def test_response_fields_that_always_appear_are_required(schema):
    usage = schema["components"]["schemas"]["ReplyUsage"]

    assert set(usage["required"]) == {"prompt_tokens", "completion_tokens", "total_tokens", "estimated"}


def test_every_error_status_is_documented_with_the_error_shape(schema):
    for path, method, operation in _operations(schema):
        for status, response in operation["responses"].items():
            if int(status) < 400 or path == "/health":
                continue
            ref = response["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/ErrorResponse", (path, method, status)


def test_the_streamed_reply_is_an_event_stream_of_typed_events(schema):
    content = schema["paths"]["/api/conversations/{id}/reply"]["post"]["responses"]["200"]["content"]
    components = schema["components"]["schemas"]

    assert content["text/event-stream"]["schema"] == {"$ref": "#/components/schemas/ReplyEvent"}
    events = [ref["$ref"].rsplit("/", 1)[-1] for ref in components["ReplyEvent"]["oneOf"]]
    assert events == ["ReplyContextEvent", "ReplyDeltaEvent", "ReplyDoneEvent", "ReplyErrorEvent"]
    names = [components[components[e]["properties"]["event"]["$ref"].rsplit("/", 1)[-1]]["enum"] for e in events]
    assert names == [["context"], ["delta"], ["done"], ["error"]]
    data = {e: components[e]["properties"]["data"]["$ref"].rsplit("/", 1)[-1] for e in events}
    assert set(components[data["ReplyDoneEvent"]]["required"]) == {"message", "usage"}
    assert components[data["ReplyDeltaEvent"]]["required"] == ["text"]


def test_constraints_the_server_checks_are_in_the_schema(schema):
    components = schema["components"]["schemas"]
    callback = {p["name"]: p["schema"] for p in schema["paths"]["/api/auth/google/callback"]["get"]["parameters"]}

    assert callback["code"]["minLength"] == 1 and callback["state"]["minLength"] == 1
    assert components["SubscribeInputRequest"]["properties"]["plan"] == {"$ref": "#/components/schemas/PaidPlanEnum"}
    assert components["PaidPlanEnum"]["enum"] == ["pro", "team"]
    domain = components["DomainClaimInputRequest"]["properties"]["domain"]
    assert re.fullmatch(domain["pattern"], "acme.com")
    assert not re.fullmatch(domain["pattern"], "not a domain")


# --- the server agrees with the schema ----------------------------------------------------


@pytest.mark.parametrize("domain", ["localhost", "acme..com", "-acme.com", "acme.c0m", "exa mple.com"])
def test_a_domain_that_is_not_one_is_refused_naming_the_field(owner_client, domain):
    response = owner_client.post("/api/organizations/current/domains", {"domain": domain}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["domain"] == ["Enter a domain name such as acme.com."]


def test_a_domain_the_pattern_accepts_is_claimed(owner_client):
    body = {"domain": "Acme-Labs.example.com"}

    response = owner_client.post("/api/organizations/current/domains", body, format="json")

    assert response.status_code == 201
    assert response.json()["domain"] == "acme-labs.example.com"


def test_an_empty_google_callback_code_is_refused_naming_it(db, anon_client, settings):
    settings.GOOGLE_CLIENT_ID, settings.GOOGLE_CLIENT_SECRET = "client-id", "client-secret"

    response = anon_client.get("/api/auth/google/callback", {"code": "", "state": "s"})

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"code"}


def test_metadata_arrays_nest_as_deep_as_the_schema_says(owner_client):
    deepest = {"grid": [[["a", {"inner": [[[1]]]}]]]}
    too_deep = {"grid": [[[[1]]]]}

    accepted = owner_client.post(
        "/api/conversations", {"title": "Grid", "agent_type": "strategy", "metadata": deepest}, format="json"
    )
    refused = owner_client.post(
        "/api/conversations", {"title": "Grid", "agent_type": "strategy", "metadata": too_deep}, format="json"
    )

    assert accepted.status_code == 201
    assert accepted.json()["metadata"] == deepest
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"]["metadata"] == [
        "Arrays may hold arrays at most 3 deep (an object in between starts over)."
    ]
