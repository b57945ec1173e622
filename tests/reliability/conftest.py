"""Fixtures of the reliability suite.

`api_data` is a signed-in owner with something behind every kind of path id (a
conversation with messages and their embeddings, a teammate, an invitation, a domain
claim), for the schemathesis run. The process tests (soak, database restart, embedding
provider outage) need no fixture: they call bench/'s scenario functions with short
durations, each on a PostgreSQL of its own in a temporary directory (never the shared
embedded server); the long runs are `bench/soak.py` and `bench/reliability.py`.
"""

import uuid
from dataclasses import dataclass

# Imported here, before any background thread of a test can import it first: a module
# imported by two threads at once can be seen half-initialized by one of them.
import numpy  # noqa: F401
import pytest
from django.core import signals
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import close_old_connections

from accounts.models import Membership
from accounts.services import domain_claim_create, invitation_create
from accounts.tokens import mint_tokens
from conversations.services import conversation_create, message_create
from conversations.shares import share_create
from documents.services import document_upload
from search.services import embedding_store


@dataclass
class ApiData:
    token: str
    conversation_id: str
    message_ids: list
    embedding_id: str
    teammate_id: str
    invitation_id: str
    domain_claim_id: str
    organization_id: str
    document_id: str
    # A user message of the conversation (edit, regenerate and activate name one) and a
    # reply id that names no reply (its events and cancel answer 404 past validation).
    message_id: str = ""
    reply_id: str = ""
    share_id: str = ""


@pytest.fixture
def unconfigured_third_parties(settings):
    """Google, Razorpay and every AI provider unconfigured (their endpoints answer their
    documented 503), local embeddings, and no rate limit: one caller sends thousands of
    requests a minute here."""
    settings.GOOGLE_CLIENT_ID = settings.GOOGLE_CLIENT_SECRET = ""
    settings.RAZORPAY_KEY_ID = settings.RAZORPAY_KEY_SECRET = settings.RAZORPAY_WEBHOOK_SECRET = ""
    settings.OPENAI_API_KEY = settings.GEMINI_API_KEY = settings.OPENROUTER_API_KEY = ""
    settings.EMBEDDING_PROVIDER = "local"
    settings.RATE_LIMITS = dict.fromkeys(settings.RATE_LIMITS, "off")


@pytest.fixture
def in_process_wsgi(db):
    """Requests through the WSGI app inside the test's transaction: Django would otherwise
    close the connection (and with it the transaction) at the end of each request, as its
    own test client prevents by the same means."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def documents_in_tmp(settings, tmp_path):
    """Uploaded files under the test's temporary directory."""
    settings.STORAGES = {
        **settings.STORAGES,
        "documents": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "documents"), "base_url": None},
        },
    }


@pytest.fixture
def api_data(in_process_wsgi, unconfigured_third_parties, documents_in_tmp, owner, org, teammate) -> ApiData:
    return _api_data(owner, org, teammate, embedded=True)


@pytest.fixture
def api_data_unembedded(in_process_wsgi, unconfigured_third_parties, documents_in_tmp, owner, org, teammate) -> ApiData:
    """api_data without computing a vector (a second of CPU each time): its embedding_id
    names no row. For the tests that never get past validation."""
    return _api_data(owner, org, teammate, embedded=False)


def _api_data(owner, org, teammate, *, embedded: bool) -> ApiData:
    conversation = conversation_create(organization=org, owner=owner, title="Q4 launch plan", agent_type="strategy")
    messages = [
        message_create(conversation=conversation, role=role, content=content)[0]
        for role, content in [
            ("user", "What should be our Q4 focus for the product launch?"),
            ("assistant", "Retention campaigns and a tight paid-social budget."),
            ("user", "Draft three subject lines for the holiday email campaign."),
        ]
    ]
    embedding_id = str(embedding_store(message=messages[0])[0].id) if embedded else str(uuid.uuid4())
    actor = Membership.objects.get(organization=org, user=owner)
    invitation = invitation_create(actor=actor, email="ivy@acme.test", role="member")
    claim = domain_claim_create(actor=actor, domain="acme.test")
    document, _ = document_upload(
        user=owner, organization=org, uploaded=SimpleUploadedFile("brief.md", b"# Brief\n\nLaunch in Q4."),
        title="Q4 brief", visibility="organization",
    )
    # Two: the list's next page has a row.
    share, _ = share_create(conversation=conversation, organization=org, scope="organization")
    share_create(conversation=conversation, organization=org, scope="organization")
    return ApiData(
        token=mint_tokens(owner, org)["access"],
        conversation_id=str(conversation.id),
        message_ids=[str(m.id) for m in messages],
        embedding_id=embedding_id,
        teammate_id=str(teammate.id),
        invitation_id=str(invitation.id),
        domain_claim_id=str(claim.id),
        organization_id=str(org.id),
        document_id=str(document.id),
        message_id=str(messages[0].id),
        reply_id=str(uuid.uuid4()),
        share_id=str(share.id),
    )
