"""The conversations admin: search, filters, messages inline and read-only counters; a
delete from the admin goes through the same service (messages removed, audit written)."""

import pytest
from django.test import Client

from accounts.models import User
from conversations.models import Conversation, Message
from raptorflow.models import AuditLog


@pytest.fixture
def admin_client(db):
    operator = User.objects.create_superuser(email="ops@raptorflow.test", password="not-used-1234")
    client = Client()
    client.force_login(operator)
    client.operator = operator
    return client


def test_changelist_searches_by_title_owner_email_and_organization_name(
    admin_client, conversation, make_conversation, outsider
):
    make_conversation(title="Unrelated")
    make_conversation(user=outsider, organization=outsider.default_organization, title="Globex plan")

    by_title = admin_client.get("/admin/conversations/conversation/", {"q": "Q4 Marketing"})
    by_owner = admin_client.get("/admin/conversations/conversation/", {"q": "olivia@acme.test"})
    by_org = admin_client.get("/admin/conversations/conversation/", {"q": conversation.organization.name})

    assert list(by_title.context["cl"].result_list) == [conversation]
    for response in (by_owner, by_org):
        assert response.status_code == 200
        assert conversation in response.context["cl"].result_list
        assert all(c.owner_id != outsider.id for c in response.context["cl"].result_list)


@pytest.mark.parametrize(
    ("params", "expected_titles"),
    [
        ({"status__exact": "archived"}, ["Archived one"]),
        ({"agent_type": "research"}, ["Research one"]),
    ],
)
def test_changelist_filters_by_status_and_agent_type(admin_client, make_conversation, params, expected_titles):
    make_conversation(title="Active one")
    archived = make_conversation(title="Archived one")
    Conversation.objects.filter(pk=archived.pk).update(status="archived")
    make_conversation(title="Research one", agent_type="research")

    response = admin_client.get("/admin/conversations/conversation/", params)

    assert response.status_code == 200
    assert [c.title for c in response.context["cl"].result_list] == expected_titles


def test_changelist_filters_by_organization(admin_client, make_conversation, outsider):
    make_conversation(title="Acme's")
    make_conversation(user=outsider, organization=outsider.default_organization, title="Globex's")

    response = admin_client.get(
        "/admin/conversations/conversation/", {"organization__id__exact": str(outsider.default_organization.id)}
    )

    assert [c.title for c in response.context["cl"].result_list] == ["Globex's"]


def test_change_page_shows_messages_inline_and_counters_read_only(admin_client, conversation):
    response = admin_client.get(f"/admin/conversations/conversation/{conversation.id}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "message 1" in page and "message 2" in page
    form_fields = response.context["adminform"].form.fields
    assert set(form_fields) == {"title", "status", "metadata"}


def test_admin_edit_changes_only_the_edited_fields(admin_client, conversation):
    response = admin_client.post(
        f"/admin/conversations/conversation/{conversation.id}/change/",
        {
            "title": "Renamed by support",
            "status": "archived",
            "metadata": '{"client": "web"}',
            "messages-TOTAL_FORMS": "2",
            "messages-INITIAL_FORMS": "2",
            "messages-MIN_NUM_FORMS": "0",
            "messages-MAX_NUM_FORMS": "1000",
            "messages-0-id": str(conversation.messages.get(sequence=1).id),
            "messages-0-conversation": str(conversation.id),
            "messages-1-id": str(conversation.messages.get(sequence=2).id),
            "messages-1-conversation": str(conversation.id),
        },
    )

    assert response.status_code == 302
    row = Conversation.objects.get(pk=conversation.pk)
    assert (row.title, row.status, row.message_count) == ("Renamed by support", "archived", 2)
    assert Message.objects.filter(conversation=conversation).count() == 2


def test_admin_delete_removes_messages_and_writes_an_audit_entry(admin_client, conversation):
    response = admin_client.post(f"/admin/conversations/conversation/{conversation.id}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    entry = AuditLog.objects.get(action="conversation.deleted")
    assert (entry.actor_id, entry.target_id) == (admin_client.operator.id, str(conversation.id))


def test_conversations_and_messages_cannot_be_added_in_the_admin(admin_client, conversation):
    assert admin_client.get("/admin/conversations/conversation/add/").status_code == 403
    assert admin_client.get("/admin/conversations/message/add/").status_code == 403
