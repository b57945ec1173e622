"""Property-based fuzz of hostile input over every operation of the schema the app serves
(read from the generator behind /api/schema, so a new endpoint is fuzzed without anyone
listing it): JSON bodies nested from 60 to 100000 levels, strings and keys full of lone
surrogates, NULs, brackets and quotes, bytes that are not UTF-8, tampered cursors, and
query parameters the operation does not take. Signed in as reliability's owner with real
ids behind the path; the per-account limit on the token endpoints is on (high), so it reads
the bodies it is sent too.

Whatever comes in: never a 5xx (but a documented 503 from an endpoint whose third party is
deliberately unconfigured here), every 4xx JSON in the one error shape, and an unknown query
parameter is a 400. schemathesis (test_api_schema.py) checks that valid and schema-violating
requests get their documented answers; this checks the inputs no schema describes.

Deterministic (derandomized) and bounded: RELIABILITY_HOSTILE_EXAMPLES examples per
operation (default 20; about a minute and a half for the whole file on two shared cores).
Every example runs in a savepoint that is rolled back.
"""

import base64
import os

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from tests.reliability.operations import (
    UNCHECKED_QUERY,
    assert_no_server_error,
    body_properties,
    call,
    json_text,
    operations,
)

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = int(os.environ.get("RELIABILITY_HOSTILE_EXAMPLES", "100"))

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
# Mostly surrogates and characters that have broken parsers before; some of anything else.
hostile_text = st.text(
    alphabet=st.one_of(SURROGATES, st.sampled_from('\x00"\\[]{}:,é\U0001f680 a0'), st.characters()),
    max_size=12,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=12,
)


@st.composite
def deeply_nested(draw, field: str | None) -> str:
    depth = draw(st.sampled_from([63, 64, 65, 1000, 100000]) | st.integers(min_value=60, max_value=5000))
    if draw(st.booleans()):
        text = "[" * depth + json_text(draw(json_values)) + "]" * depth
    else:
        key = json_text(draw(hostile_text.filter(lambda key: len(key) < 4)))
        text = f'{{{key}:' * depth + json_text(draw(json_values)) + "}" * depth
    return f'{{"{field}": {text}}}' if field else text


@st.composite
def schema_shaped(draw, properties: dict) -> str:
    """An object with the operation's own fields (and maybe others), hostile values in them."""
    names = draw(st.lists(st.sampled_from(sorted(properties)), unique=True)) if properties else []
    body = {name: draw(json_values) for name in names}
    body.update(draw(st.dictionaries(hostile_text, json_values, max_size=2)))
    return json_text(body)


def bodies(operation) -> st.SearchStrategy:
    properties = body_properties(operation)
    fields = st.sampled_from(sorted(properties)) if properties else st.just("field")
    return st.one_of(
        fields.flatmap(deeply_nested),
        deeply_nested(None),
        schema_shaped(properties),
        json_values.map(json_text),
        st.binary(max_size=40),
        st.none(),
    )


def cursors() -> st.SearchStrategy:
    token = st.tuples(st.sampled_from(["o", "r", "p", "x"]), hostile_text)
    querystring = st.lists(token, max_size=3).map(
        lambda tokens: "&".join(f"{name}={value.encode('utf-8', 'surrogatepass').hex()[:8]}" for name, value in tokens)
    )
    typed = st.sampled_from(["p=abc", "p=%00", "p=2026-99-99", "p=1e400", "o=", "r=", "o=-1", "p=-1", "p=" + "9" * 30])
    return st.one_of(
        (querystring | typed).map(lambda text: base64.b64encode(text.encode()).decode()),
        hostile_text,
    )


@st.composite
def query_parameters(draw, operation) -> list[tuple[str, str]]:
    """The operation's own parameters with hostile values (tampered cursors for `cursor`),
    and in a third of the cases one it does not take (refused before the body is read)."""
    known = operation.query_parameters
    query = []
    if known:
        for name in draw(st.lists(st.sampled_from(known), max_size=3)):
            query.append((name, draw(cursors() if name == "cursor" else hostile_text)))
    if draw(st.sampled_from([False, False, True])):
        unknown = st.sampled_from(["conversation_idd", "format", "page", "offset", "debug", ""]) | hostile_text
        query.append((draw(unknown.filter(lambda name: name not in known)), draw(hostile_text)))
    return query


@pytest.fixture
def client(api_data_unembedded, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "auth_account": "100000/min", "auth_ip": "100000/min"}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_data_unembedded.token}")
    return client


@pytest.mark.parametrize("operation", operations(), ids=str)
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    # The fixtures are set up once per operation; every example rolls its writes back.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
@given(data=st.data())
def test_hostile_requests_never_get_a_server_error_and_errors_are_json(client, api_data_unembedded, operation, data):
    query = data.draw(query_parameters(operation), label="query")
    body = data.draw(bodies(operation), label="body") if operation.json_body is not None else None

    savepoint = transaction.savepoint()
    try:
        response = call(client, operation, api_data_unembedded, query=query, body=body)
    finally:
        transaction.savepoint_rollback(savepoint)

    assert_no_server_error(operation, response)
    unknown = {name for name, _ in query} - set(operation.query_parameters)
    # (A body over the size limit is refused by the middleware first: 413.)
    if unknown and (operation.method, operation.path) not in UNCHECKED_QUERY and response.status_code != 413:
        assert response.status_code == 400, f"{operation} with {sorted(unknown)}: {response.status_code}"
