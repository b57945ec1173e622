"""Fixtures shared by the whole suite: three named users (owner, teammate, outsider) with
API clients authenticated by real JWTs, against the real PostgreSQL + pgvector.

Third-party HTTP is mocked at its boundary only: `responses` for requests-based SDKs
(allauth's Google client, razorpay), respx for httpx-based ones. The openai and
google-genai SDKs use httpx2, so httpx is aliased to it before anything imports httpx, and
respx's plugin is loaded afterwards (pytest runs with -p no:respx).
"""

import os

os.environ.setdefault("RAPTORFLOW_TESTING", "1")

import httpx2  # noqa: E402

httpx2.alias_httpx()

# Billing fixtures (Razorpay keys, mocked Razorpay API, subscriptions) for every directory;
# the run's own Redis (TEST_REDIS_URL, see tests/redis_server.py).
pytest_plugins = ["respx.plugin", "tests.billing_fixtures", "tests.redis_server", "tests.synthetic_vectors"]

import pytest  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from accounts.models import Membership, Role  # noqa: E402
from accounts.services import user_create_with_personal_organization  # noqa: E402
from accounts.tokens import mint_tokens  # noqa: E402


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any HTTP that a test did not mock fails loudly instead of reaching the internet."""
    import socket

    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
            return real_connect(self, address)
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        raise RuntimeError(f"Test tried to reach the network: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


def make_client(user, organization=None) -> APIClient:
    organization = organization or user.default_organization
    tokens = mint_tokens(user, organization)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    client.tokens = tokens
    client.user = user
    client.organization = organization
    return client


@pytest.fixture
def owner(db):
    return user_create_with_personal_organization(email="olivia@acme.test", name="Olivia Owner")


@pytest.fixture
def org(owner):
    return owner.default_organization


@pytest.fixture
def teammate(org):
    """A member of the owner's organization (role: member)."""
    user = user_create_with_personal_organization(email="tom@acme.test", name="Tom Teammate")
    Membership.objects.create(organization=org, user=user, role=Role.MEMBER)
    user.default_organization = org
    user.save(update_fields=["default_organization"])
    return user


@pytest.fixture
def outsider(db):
    """A user of another organization."""
    return user_create_with_personal_organization(email="eve@globex.test", name="Eve Outsider")


@pytest.fixture
def owner_client(owner, org):
    return make_client(owner, org)


@pytest.fixture
def teammate_client(teammate, org):
    return make_client(teammate, org)


@pytest.fixture
def outsider_client(outsider):
    return make_client(outsider)


@pytest.fixture
def anon_client():
    return APIClient()
