"""The search admin: embedding counts and coverage per organization and model, and
embedding rows without their vectors."""

import pytest
from django.test import Client

from accounts.models import User
from search.models import MessageEmbedding
from tests.search.conftest import MARKETING_CORPUS, add_message, make_conversation

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(db):
    operator = User.objects.create_superuser(email="ops@raptorflow.test", password="not-used-1234")
    client = Client()
    client.force_login(operator)
    return client


def test_coverage_per_organization_and_model(admin_client, org, outsider, conversation, corpus):
    add_message(conversation, "Not embedded yet")
    add_message(make_conversation(outsider), "The outsider's only message")
    response = admin_client.get("/admin/search/embeddingcoverage/")
    assert response.status_code == 200
    rows = {row[0]: row[1:] for row in _table(response.content.decode())}
    embedded = len(MARKETING_CORPUS)
    assert rows[org.name][:4] == [str(embedded + 1), str(embedded), f"{100 * embedded / (embedded + 1):.1f}%", "0"]
    assert f"all-MiniLM-L6-v2-int8 (384d): {embedded}" in rows[org.name][4]
    assert rows[outsider.default_organization.name][:3] == ["1", "0", "0.0%"]


def test_embedding_rows_never_show_the_vector(admin_client, corpus):
    embedding = MessageEmbedding.objects.first()
    listing = admin_client.get("/admin/search/messageembedding/")
    detail = admin_client.get(f"/admin/search/messageembedding/{embedding.id}/change/")
    assert listing.status_code == detail.status_code == 200
    first_values = [f"{value:.6f}"[:7] for value in embedding.embedding[:3]]
    for page in (listing.content.decode(), detail.content.decode()):
        assert "all-MiniLM-L6-v2-int8" in page
        assert not any(value in page for value in first_values)
    assert embedding.text_sha256 in detail.content.decode()


def test_embeddings_cannot_be_added_or_edited_in_the_admin(admin_client, corpus):
    embedding = MessageEmbedding.objects.first()
    assert admin_client.get("/admin/search/messageembedding/add/").status_code == 403
    response = admin_client.post(f"/admin/search/messageembedding/{embedding.id}/change/", {"model": "x"})
    assert response.status_code == 403
    assert MessageEmbedding.objects.get(id=embedding.id).model == "all-MiniLM-L6-v2-int8"


def _table(html: str) -> list[list[str]]:
    """The changelist's rows as lists of cell texts."""
    import html as html_lib
    import re

    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = []
    for row in re.findall(r"<tr.*?>(.*?)</tr>", body, flags=re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)
        rows.append([html_lib.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells])
    return rows
