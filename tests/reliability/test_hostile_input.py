"""Hostile input is a 400 that says what is wrong, never a 500 (SPEC §4 Conventions).

Each check runs on every operation of the schema the app serves that it applies to (every
operation with a JSON body, every list with a `cursor`, every operation's query string),
signed in as reliability's owner with real ids behind the path, so the body or the query
reaches the code that reads it. Also the messages that point a confused client the right
way: the Bearer scheme, and a path without its trailing slash.
"""

import base64
import json
import uuid
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from django.urls import resolve
from rest_framework.test import APIClient, APIRequestFactory

from conversations.models import Conversation
from raptorflow.api import accepted_query_parameters
from raptorflow.parsers import nesting_exceeds
from raptorflow.throttling import AuthAccountThrottle
from tests.reliability.operations import (
    UNCHECKED_QUERY,
    assert_no_server_error,
    body_properties,
    call,
    fill_path,
    is_unconfigured_third_party,
    json_operations,
    json_text,
    list_operations,
    operations,
)

pytestmark = pytest.mark.django_db

# The Razorpay webhook reads its raw, signed body itself (not through the API's JSON
# parser); its odd payloads are tested signed in tests/billing/test_webhook_odd_payloads.py.
JSON_OPERATIONS = [op for op in json_operations() if op.path != "/api/billing/webhook"]
LIST_OPERATIONS = list_operations()
# Lists for which the reliability fixture holds a single row: no next page to follow.
SINGLE_ROW_LISTS = {
    "/api/conversations",
    "/api/conversations/search/by-title",
    "/api/organizations",
    "/api/organizations/current/domains",
    "/api/organizations/current/invitations",
    "/api/organizations/current/provider-keys",
    # One document (still pending: its chunks are not written yet).
    "/api/documents",
    "/api/documents/{id}/chunks",
}
MULTI_PAGE_LISTS = [op for op in LIST_OPERATIONS if op.path not in SINGLE_ROW_LISTS]
CHECKED_OPERATIONS = [op for op in operations() if (op.method, op.path) not in UNCHECKED_QUERY]


@pytest.fixture
def api_data(api_data_unembedded):
    """Reliability's owner and ids, without a vector: nothing here gets past validation."""
    return api_data_unembedded


@pytest.fixture
def client(api_data):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_data.token}")
    return client


def nested(depth: int, bracket: str) -> str:
    if bracket == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def first_field(operation) -> str:
    return next(iter(body_properties(operation)), "field")


def assert_refused(operation, response, *codes: str) -> dict:
    """A 400 in the error shape with one of `codes`; returns the error."""
    assert_no_server_error(operation, response)
    assert not is_unconfigured_third_party(operation, response), f"{operation}: its third party is unconfigured here"
    assert response.status_code == 400, f"{operation}: {response.status_code} {response.content[:300]!r}"
    error = response.json()["error"]
    assert error["code"] in codes, error
    return error


# --- Nesting ------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", JSON_OPERATIONS, ids=str)
def test_body_nested_1000_or_100000_levels_is_a_400(client, api_data, operation):
    for depth in (1000, 100000):
        for bracket in ("[", "{"):
            response = call(client, operation, api_data, body=nested(depth, bracket))

            error = assert_refused(operation, response, "malformed_request")
            assert "64" in error["message"], (depth, bracket, error)


@pytest.mark.parametrize("operation", JSON_OPERATIONS, ids=str)
def test_body_nested_65_levels_inside_a_field_is_a_400(client, api_data, operation):
    body = f'{{"{first_field(operation)}": {nested(64, "[")}}}'

    response = call(client, operation, api_data, body=body)

    assert_refused(operation, response, "malformed_request")


def test_metadata_nested_64_levels_is_accepted(client):
    # The body object is level 1, metadata level 2: 62 more containers make 64 (arrays and
    # objects in turn: arrays directly inside arrays stop at three, json_fields.py).
    deep = 1
    for level in range(62):
        deep = [deep] if level % 2 == 0 else {"a": deep}
    body = json.dumps({"title": "Deep", "agent_type": "general", "metadata": {"a": deep}})

    response = client.generic("POST", "/api/conversations", body.encode(), content_type="application/json")

    assert response.status_code == 201, response.content
    assert Conversation.objects.filter(id=response.json()["id"]).exists()


def test_depth_check_ignores_brackets_inside_strings():
    text = '{"a": "%s", "b": [1, "]]]]", {"c": "\\"[[["}]}' % ("[" * 5000)

    assert not nesting_exceeds(text, 64)
    assert nesting_exceeds("[" * 65 + "]" * 65, 64)
    assert not nesting_exceeds("[" * 64 + "]" * 64, 64)


# --- Lone surrogates ----------------------------------------------------------------------


@pytest.mark.parametrize("operation", JSON_OPERATIONS, ids=str)
def test_lone_surrogate_in_a_value_is_a_400_naming_the_field(client, api_data, operation):
    field = first_field(operation)
    for value in ("\ud800", "ok \udbff then", ["fine", {"deep": "\udfff"}]):
        response = call(client, operation, api_data, body=json_text({field: value}))

        error = assert_refused(operation, response, "validation_error")
        assert field in error["fields"], (value, error)


@pytest.mark.parametrize("operation", JSON_OPERATIONS, ids=str)
def test_lone_surrogate_in_a_nested_key_is_a_400_naming_the_field(client, api_data, operation):
    field = first_field(operation)

    response = call(client, operation, api_data, body=json_text({field: {"fine": [{"\udc00 key": 1}]}}))

    error = assert_refused(operation, response, "validation_error")
    assert field in error["fields"]


@pytest.mark.parametrize("operation", JSON_OPERATIONS, ids=str)
def test_lone_surrogate_as_a_top_level_key_is_a_400_naming_it_escaped(client, api_data, operation):
    response = call(client, operation, api_data, body='{"\\ud800": 1}')

    error = assert_refused(operation, response, "validation_error")
    assert "\\ud800" in error["fields"]


@pytest.mark.parametrize("operation", JSON_OPERATIONS, ids=str)
def test_nul_characters_in_every_string_of_a_body_are_never_a_server_error(client, api_data, operation):
    body = {}
    for name, prop in body_properties(operation).items():
        kind = prop.get("type")
        if kind == "string" or "$ref" in prop or "allOf" in prop or "oneOf" in prop:
            body[name] = "a\u0000b"
        elif kind == "object":
            body[name] = {"k\u0000": "v\u0000"}
        elif kind == "array":
            body[name] = ["a\u0000b"]
    for sent in (body, {"field": "\u0000"}, ["\u0000"]):
        response = call(client, operation, api_data, body=json_text(sent))

        assert_no_server_error(operation, response)


def test_lone_surrogate_in_message_metadata_is_refused_and_nothing_is_stored(client, api_data):
    path = f"/api/conversations/{api_data.conversation_id}/messages"
    conversation = Conversation.objects.get(id=api_data.conversation_id)
    before = conversation.messages.count()

    response = client.generic(
        "POST",
        path,
        b'{"role": "user", "content": "Hello", "metadata": {"\\ud800": "v", "k": "\\udfff"}}',
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"].keys() == {"metadata"}
    assert conversation.messages.count() == before


def test_lone_surrogate_in_conversation_metadata_is_refused_and_the_row_is_unchanged(client, api_data):
    conversation = Conversation.objects.get(id=api_data.conversation_id)

    response = client.generic(
        "PATCH",
        f"/api/conversations/{conversation.id}",
        b'{"metadata": {"campaign": "q4 \\ud83d"}}',
        content_type="application/json",
    )

    assert response.status_code == 400
    assert "metadata" in response.json()["error"]["fields"]
    conversation_after = Conversation.objects.get(id=conversation.id)
    assert conversation_after.metadata == conversation.metadata


def test_lone_surrogate_in_organization_settings_is_refused(client, org):
    before = type(org).objects.get(id=org.id)

    response = client.generic(
        "PATCH", "/api/organizations/current", b'{"settings": {"tone": "\\udc80"}}', content_type="application/json"
    )

    assert response.status_code == 400
    assert "settings" in response.json()["error"]["fields"]
    assert type(org).objects.get(id=org.id).settings == before.settings


def test_a_valid_surrogate_pair_is_accepted(client):
    body = b'{"title": "Launch \\ud83d\\ude80", "agent_type": "general", "metadata": {"\\ud83d\\ude80": "go"}}'

    response = client.generic("POST", "/api/conversations", body, content_type="application/json")

    assert response.status_code == 201, response.content
    assert response.json()["title"] == "Launch \U0001f680"
    assert Conversation.objects.get(id=response.json()["id"]).metadata == {"\U0001f680": "go"}


@pytest.fixture
def account_rate_limited(settings):
    """The per-account limit on: it reads the submitted token before the view does."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "auth_account": "1000/min", "auth_ip": "1000/min"}


@pytest.mark.parametrize(("path", "field"), [("/api/auth/verify-token", "token"), ("/api/auth/refresh", "refresh")])
def test_lone_surrogate_token_is_a_400_naming_it_with_the_account_limit_on(
    account_rate_limited, api_data, path, field
):
    response = APIClient().generic("POST", path, b'{"%s": "ey\\ud800.x.y"}' % field.encode(), "application/json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"].keys() == {field}


@pytest.mark.parametrize("token", ["ey\ud800.x.y", "\udfff", "é.not.ascii"])
def test_account_throttle_ignores_a_token_it_cannot_encode(account_rate_limited, db, token):
    django_request = APIRequestFactory().post("/api/auth/verify-token", {}, format="json")
    django_request.resolver_match = resolve("/api/auth/verify-token")
    request = SimpleNamespace(data={"token": token}, resolver_match=django_request.resolver_match)

    assert AuthAccountThrottle().identity(request, view=None) is None


# --- Tampered cursors ---------------------------------------------------------------------


def _cursor(querystring: str) -> str:
    return base64.b64encode(querystring.encode()).decode()


TAMPERED_CURSORS = {
    "position not a value": _cursor("p=abc"),
    "position NUL": _cursor("p=%00"),
    "position impossible date": _cursor("p=2026-99-99"),
    "position impossible timestamp": _cursor("p=2026-02-30+10:00:00+00:00"),
    "position overflowing float": _cursor("p=1e400"),
    "position huge integer": _cursor("p=" + "9" * 40),
    "position negative": _cursor("p=-1"),
    "position empty": _cursor("p="),
    "position invalid utf-8": _cursor("p=%ED%A0%80"),
    "position with reverse": _cursor("r=1&p=abc"),
    "offset empty": _cursor("o="),
    "offset negative": _cursor("o=-5"),
    "offset not a number": _cursor("o=abc"),
    "offset float": _cursor("o=1e400"),
    "reverse empty": _cursor("r="),
    "reverse not a number": _cursor("r=yes"),
    "not base64": "not-a-cursor",
    "not ascii": "curs\u00f6r",
    "base64 of binary": base64.b64encode(b"\xff\xfe\x00").decode(),
}


@pytest.mark.parametrize("operation", LIST_OPERATIONS, ids=str)
def test_every_tampered_cursor_is_a_400_invalid_cursor(client, api_data, operation):
    for tampering, cursor in TAMPERED_CURSORS.items():
        response = call(client, operation, api_data, query=[("cursor", cursor)])

        error = assert_refused(operation, response, "invalid_cursor")
        assert "cursor" in error["fields"], (tampering, error)


@pytest.mark.parametrize("operation", LIST_OPERATIONS, ids=str)
def test_cursor_at_the_ends_of_time_or_of_integers_is_never_a_server_error(client, api_data, operation):
    for position in (
        "0001-01-01 00:00:00+14:00",
        "9999-12-31 23:59:59.999999-14:00",
        "9223372036854775807",
        "2147483648",
        "-2147483649",
    ):
        response = call(client, operation, api_data, query=[("cursor", _cursor("p=" + quote(position)))])

        assert_no_server_error(operation, response)
        assert response.status_code in (200, 400), (position, response.status_code)


@pytest.mark.parametrize("operation", MULTI_PAGE_LISTS, ids=str)
def test_next_cursor_of_a_list_still_works(client, api_data, operation):
    first = call(client, operation, api_data, query=[("page_size", "1")])
    assert first.status_code == 200, first.content
    next_url = first.json()["next"]
    assert next_url is not None, f"{operation} has a single row here"

    response = client.get(next_url)

    assert response.status_code == 200, response.content


# --- Unknown query parameters -------------------------------------------------------------


@pytest.mark.parametrize("operation", CHECKED_OPERATIONS, ids=str)
def test_unknown_query_parameter_is_a_400_naming_it(client, api_data, operation):
    response = call(client, operation, api_data, query=[("conversation_idd", "x")])

    error = assert_refused(operation, response, "validation_error")
    assert error["fields"]["conversation_idd"] == ["Unknown query parameter."]


_ID_ATTRIBUTES = [
    "conversation_id", "embedding_id", "teammate_id", "invitation_id", "domain_claim_id", "document_id",
    "message_id", "reply_id", "share_id",
]


@pytest.mark.parametrize("operation", CHECKED_OPERATIONS, ids=str)
def test_accepted_query_parameters_are_those_of_the_schema(operation):
    ids = SimpleNamespace(**{name: str(uuid.uuid4()) for name in _ID_ATTRIBUTES})
    view_class = resolve(fill_path(operation, ids)).func.cls

    assert accepted_query_parameters(view_class, operation.method) == set(operation.query_parameters)


def test_global_search_with_a_mistyped_parameter_is_refused_not_widened(client, api_data):
    response = client.get(
        "/api/search/semantic-search/global", {"query": "q4", "conversation_idd": api_data.conversation_id}
    )

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "validation_error",
        "message": "Invalid input: conversation_idd.",
        "fields": {"conversation_idd": ["Unknown query parameter."]},
    }


def test_documented_query_parameters_are_still_accepted(client, api_data):
    response = client.get("/api/conversations", {"status": "active", "page_size": 5})

    assert response.status_code == 200, response.content


def test_google_callback_accepts_the_parameters_google_adds(api_data):
    params = {"code": "c", "state": "s", "scope": "email", "authuser": "0", "prompt": "consent", "hd": "acme.test"}

    response = APIClient().get("/api/auth/google/callback", params)

    assert response.status_code != 400 or not set(response.json()["error"].get("fields", {})) & set(params)
    assert_no_server_error(
        next(op for op in operations() if op.path == "/api/auth/google/callback"), response
    )


def test_unknown_query_parameter_on_a_delete_deletes_nothing(client, api_data):
    response = client.delete(f"/api/conversations/{api_data.conversation_id}?force=1")

    assert response.status_code == 400
    assert Conversation.objects.filter(id=api_data.conversation_id).exists()


def test_unknown_query_parameter_is_refused_before_authentication(api_data):
    response = APIClient().get("/api/conversations?conversation_idd=x")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"conversation_idd": ["Unknown query parameter."]}


def test_unsupported_method_with_query_parameters_is_still_a_405(client):
    response = client.generic("TRACE", "/api/conversations?status=active&conversation_idd=x")

    assert response.status_code == 405


def test_anonymous_caller_with_documented_query_parameters_gets_401(api_data):
    response = APIClient().get("/api/conversations?status=active&page_size=5")

    assert response.status_code == 401


@pytest.mark.parametrize("value", ["json", "api", "xml"])
def test_format_parameter_is_unknown_too(client, value):
    response = client.get(f"/api/conversations?format={value}")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"format": ["Unknown query parameter."]}


# --- Messages that help -------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Token {token}", "JWT {token}", "{token}", "token {token}"])
def test_authorization_without_the_bearer_scheme_is_a_401_naming_bearer(api_data, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.format(token=api_data.token))

    response = client.get("/api/auth/me")

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "not_authenticated"
    assert "Bearer" in error["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_bearer_token_still_signs_in(client):
    assert client.get("/api/auth/me").status_code == 200


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    ("path", "hint"),
    [
        ("/api/conversations/", "/api/conversations"),
        ("/api/auth/me/", "/api/auth/me"),
        ("/api/search/semantic-search/global//", "/api/search/semantic-search/global"),
    ],
)
def test_trailing_slash_is_a_404_naming_the_path_without_it(client, settings, path, hint, debug):
    settings.DEBUG = debug

    response = client.get(path)

    assert response.status_code == 404
    assert response.json()["error"] == {"code": "not_found", "message": f"No such endpoint. Did you mean {hint}?"}


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/no-such-thing/", "/api/conversations/not-a-uuid/", "/api/conversations/x"])
def test_unknown_path_is_a_plain_404_without_a_hint(client, settings, path, debug):
    settings.DEBUG = debug

    response = client.get(path)

    assert response.status_code == 404
    assert response.json()["error"] == {"code": "not_found", "message": "Not found."}
