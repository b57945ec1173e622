"""The seed's curl examples "Create Conversation" and "Add Message", as written, with a
token printed by `manage.py issue_token`."""

import io

from django.core.management import call_command
from rest_framework.test import APIClient

from conversations.models import Conversation, Message


def issue_access_token(email: str) -> str:
    out = io.StringIO()
    call_command("issue_token", email, stdout=out, stderr=io.StringIO())
    lines = dict(line.split(": ", 1) for line in out.getvalue().splitlines() if ": " in line)
    return lines["access"]


def test_seed_curl_examples_create_a_conversation_and_add_a_message(db):
    jwt_token = issue_access_token("marketer@acme.test")
    client = APIClient()
    headers = {"Authorization": f"Bearer {jwt_token}"}

    created = client.post(
        "/api/conversations",
        data='{\n    "title": "Q4 Marketing Strategy",\n    "agent_type": "strategy"\n  }',
        content_type="application/json",
        headers=headers,
    )

    assert created.status_code == 201
    conversation = created.json()
    assert {k: conversation[k] for k in ("title", "status", "message_count")} == {
        "title": "Q4 Marketing Strategy",
        "status": "active",
        "message_count": 0,
    }

    added = client.post(
        f"/api/conversations/{conversation['id']}/messages",
        data='{\n    "role": "user",\n    "content": "What should be our Q4 focus?"\n  }',
        content_type="application/json",
        headers=headers,
    )

    assert added.status_code == 201
    assert added.json()["content"] == "What should be our Q4 focus?"
    assert added.json()["conversation_id"] == conversation["id"]
    row = Conversation.objects.get(pk=conversation["id"])
    assert row.owner.email == "marketer@acme.test"
    assert row.message_count == 1
    assert Message.objects.get(conversation=row).content == "What should be our Q4 focus?"
