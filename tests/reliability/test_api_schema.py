"""schemathesis against /api/schema, every operation, signed in as an owner whose
conversation, messages, embedding, teammate, invitation and domain claim sit behind the
path ids (half of the generated ids are swapped for them, the other half stay unknown).

Every response must be in the schema: a documented status, JSON of the documented shape,
and no server error; and a request the schema allows is not refused as invalid, except
where only the server can know (SERVER_ONLY_KNOWLEDGE, cursors). The only 5xx allowed is
a documented 503 `not_configured` from an endpoint whose third party (Google, Razorpay, a
chat model) is deliberately unconfigured here. Each example runs in a savepoint that is
rolled back, so a DELETE /api/auth/me or a deleted conversation does not empty the data the
next example needs.

Deterministic (derandomized) and bounded: RELIABILITY_SCHEMA_EXAMPLES examples per
operation and phase (default 20); `bench/reliability.py schema` runs it with more.
"""

import os

import pytest
import schemathesis
from django.db import transaction
from hypothesis import HealthCheck, settings
from schemathesis.core import NotSet
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from raptorflow.wsgi import application

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = int(os.environ.get("RELIABILITY_SCHEMA_EXAMPLES", "20"))

# The schema the app serves, read once at collection through the WSGI app (no database).
schema = schemathesis.openapi.from_wsgi("/api/schema", application)

# Set by the `ids` fixture for the hooks below, which schemathesis calls without fixtures.
KNOWN: dict = {}

PATH_IDS = {
    "/api/conversations/{id}": "conversation_id",
    "/api/conversations/{id}/messages": "conversation_id",
    "/api/conversations/{id}/messages/recent": "conversation_id",
    "/api/conversations/{id}/reply": "conversation_id",
    "/api/search/embeddings/{id}": "embedding_id",
    "/api/organizations/current/members/{user_id}": "teammate_id",
    "/api/organizations/current/invitations/{id}": "invitation_id",
    "/api/organizations/current/domains/{id}": "domain_claim_id",
    "/api/documents/{id}": "document_id",
    "/api/documents/{id}/file": "document_id",
    "/api/documents/{id}/chunks": "document_id",
    "/api/documents/{id}/reprocess": "document_id",
    "/api/conversations/{id}/shares": "conversation_id",
    # Paths naming two ids: the attribute of each.
    "/api/conversations/{id}/messages/{message_id}/feedback": {"id": "conversation_id", "message_id": "message_ids"},
    "/api/conversations/{id}/shares/{share_id}": {"id": "conversation_id"},
}
BODY_IDS = {
    "conversation_id": "conversation_id",
    "message_id": "message_id",
    "organization_id": "organization_id",
}


def _swap(value):
    """A known id for about half of the generated UUIDs (decided by the UUID itself, so the
    run stays deterministic); anything that is not a UUID string is left as generated, so a
    schema-violating case stays one."""
    return isinstance(value, str) and len(value) == 36 and value.count("-") == 4 and value[0] in "01234567"


@schema.auth(refresh_interval=None)
class OwnerToken:
    """The owner's access token on every case, except those generated without it on
    purpose (to check that the API refuses them)."""

    def get(self, case, context):
        # Also asked while the tests are collected, before any data exists.
        return KNOWN["data"].token if KNOWN else None

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.hook
def map_path_parameters(context, path_parameters):
    mapping = PATH_IDS.get(context.operation.path)
    if mapping and KNOWN:
        for name, value in path_parameters.items():
            attribute = mapping.get(name) if isinstance(mapping, dict) else mapping
            if attribute and _swap(value):
                known = getattr(KNOWN["data"], attribute)
                # message_ids: the conversation's first reply (user, assistant, user).
                path_parameters[name] = known[1] if isinstance(known, list) else known
    return path_parameters


@schema.hook
def map_body(context, body):
    if not (KNOWN and isinstance(body, dict)):
        return body
    data = KNOWN["data"]
    for field, attribute in BODY_IDS.items():
        if _swap(body.get(field)):
            body[field] = data.message_ids[0] if attribute == "message_id" else getattr(data, attribute)
    if isinstance(body.get("message_ids"), list):
        body["message_ids"] = [data.message_ids[i % 3] if _swap(v) else v for i, v in enumerate(body["message_ids"])]
    if isinstance(body.get("document_ids"), list):
        body["document_ids"] = [data.document_id if _swap(v) else v for v in body["document_ids"]]
    return body


@schema.hook
def map_query(context, query):
    if KNOWN and isinstance(query, dict) and _swap(query.get("conversation_id")):
        query["conversation_id"] = KNOWN["data"].conversation_id
    return query


@pytest.fixture
def ids(api_data):
    KNOWN["data"] = api_data
    yield api_data
    KNOWN.clear()


def _is_unconfigured_third_party(case, response) -> bool:
    """A documented 503 saying the third party is not configured on this server."""
    if response.status_code != 503 or "503" not in case.operation.definition.raw.get("responses", {}):
        return False
    try:
        return response.json()["error"]["code"] == "not_configured"
    except (ValueError, KeyError, TypeError):
        return False


def _only_negation_is_an_empty_filter(case) -> bool:
    """`?status=` or `?status=&pinned=`: the list filters (django-filter) read an empty
    value as no filter, as HTML forms do, where the schema's enum has no empty string. True
    when every query value is either an empty filter value or valid for its parameter."""
    data = case.meta.phase.data if case.meta else None
    location = getattr(data, "parameter_location", None)
    if not (location == ParameterLocation.QUERY or (location is None and isinstance(case.body, NotSet))):
        return False
    query = case.query or {}
    parameters = {parameter.name: parameter for parameter in case.operation.query}
    empty_filters = [name for name, value in query.items() if value == "" and name in parameters]
    return bool(empty_filters) and all(
        name in empty_filters or (name in parameters and parameters[name].is_valid(value))
        for name, value in query.items()
    )


# Operations that may refuse a schema-valid request for what only the server knows, and
# why. Everywhere else a request the schema allows must not be refused as invalid (400,
# 413, 415, 422): the schema says what the server accepts (positive_data_acceptance).
SERVER_ONLY_KNOWLEDGE = {
    "GET /api/auth/google/callback": "the state must be one that google/login issued",
    "POST /api/conversations/{id}/reply": "exactly one of content and message_id",
    "POST /api/search/batch-embed": "exactly one of message_ids and conversation_id",
    # Not yet stated in the schema (found by this check; the schema should say them):
    "PUT /api/organizations/current/provider-keys/{provider}": "an API key holds no whitespace",
    # A tag is printable text with something besides spaces (conversations/tags.py,
    # str.isprintable): Unicode's categories, which an OpenAPI pattern cannot name.
    "POST /api/conversations": "each tag is printable and not blank",
    "PATCH /api/conversations/{id}": "each tag is printable and not blank",
    # The type is sniffed from the file's bytes (documents/sniffing.py): 415 for anything else.
    "POST /api/documents": "the file's bytes are a PDF, DOCX, PPTX, HTML, Markdown, text or CSV",
}


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _refusal_may_need_server_knowledge(case) -> bool:
    """A listed operation; a request carrying a cursor (opaque: only the server can make
    one); or a body with a NUL character, which PostgreSQL cannot store and OpenAPI 3.0
    cannot forbid in an object's keys."""
    return (
        case.operation.label in SERVER_ONLY_KNOWLEDGE
        or "cursor" in (case.query or {})
        or _has_nul(case.body if isinstance(case.body, dict | list | str) else None)
    )


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    # The fixtures are set up once per operation; every example rolls its writes back.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_answers_what_the_schema_documents(case, ids):
    savepoint = transaction.savepoint()
    try:
        response = case.call()
        if _is_unconfigured_third_party(case, response):
            case.validate_response(
                response,
                checks=[
                    status_code_conformance,
                    content_type_conformance,
                    response_headers_conformance,
                    response_schema_conformance,
                ],
            )
        else:
            # Every default check: no 5xx at all, documented status, content type, headers
            # and body, schema-violating input refused, schema-valid input accepted (but
            # where only the server can know: SERVER_ONLY_KNOWLEDGE), auth enforced,
            # required headers, unsupported methods.
            excluded = [positive_data_acceptance] if _refusal_may_need_server_knowledge(case) else []
            if _only_negation_is_an_empty_filter(case):
                excluded.append(negative_data_rejection)
            case.validate_response(response, excluded_checks=excluded)
    finally:
        transaction.savepoint_rollback(savepoint)
