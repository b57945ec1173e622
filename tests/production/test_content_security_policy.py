"""A Content-Security-Policy (django-csp) on the HTML pages — /docs, /redoc, the admin —
that allows scripts from this origin only, never inline ones, while the pages keep loading
(tests/production/test_static_files.py fetches every file they name); JSON answers carry
the same policy, whose default-src is 'none'."""

import pytest

from tests.production.test_static_files import PAGES, assets_of, directives, inline_scripts, is_init_script

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("page", [*PAGES, "/admin/"])
def test_html_pages_allow_no_inline_script(site_or_anon, page):
    response = site_or_anon(page).get(page)

    assert response.status_code == 200
    policy = directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert inline_scripts(response.content) == []


def test_docs_serves_swagger_uis_init_script_as_a_file(anon_client):
    page = anon_client.get("/docs")
    script = next(url for url in assets_of(page.content) if is_init_script("/docs", url))

    response = anon_client.get(script)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in response.content and b"/api/schema" in response.content


def test_json_answers_carry_a_policy_that_loads_nothing(anon_client, owner_client):
    for response in (anon_client.get("/api/auth/me"), owner_client.get("/api/organizations")):
        assert response["Content-Type"].startswith("application/json")
        assert directives(response["Content-Security-Policy"])["default-src"] == ["'none'"]


@pytest.fixture
def site_or_anon(anon_client):
    """The admin index needs a signed-in operator; the other pages anyone."""
    from django.test import Client

    from accounts.models import User

    def client_for(page):
        if page != "/admin/":
            return anon_client
        client = Client()
        client.force_login(User.objects.create_superuser(email="ops@raptorflow.test", password="operator-password-1"))
        return client

    return client_for
