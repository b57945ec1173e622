"""Static files served by the app itself (WhiteNoise) under a production-mode gunicorn, from
a STATIC_ROOT collected by the Dockerfile's own collectstatic line: every script and
stylesheet that /docs, /redoc and the admin login reference loads, with the right type, and
hashed names are cached for a year. In-process (nothing collected), the same pages load
their files from the apps' static directories. /docs is Swagger UI's split view: its init
script is not a static file but the page itself with ?script (no inline script, so the
Content-Security-Policy needs no 'unsafe-inline' for scripts)."""

import os
import re
import secrets
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from tests.production.conftest import gunicorn_server, process_env, request
from tests.production.deploy_files import dockerfile_env

HOST = "api.example.com"
HEADERS = {"Host": HOST, "X-Forwarded-Proto": "https"}
PAGES = ("/docs", "/redoc", "/admin/login/")
HASHED = re.compile(r"\.[0-9a-f]{12}\.")
TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg"}


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        elif tag == "link" and attrs.get("href") and attrs.get("rel") in ("stylesheet", "icon"):
            self.urls.append(attrs["href"])


def assets_of(html: bytes) -> list[str]:
    """The page's own scripts and stylesheets (third-party URLs, e.g. ReDoc's web fonts, aside)."""
    parser = _Assets()
    parser.feed(html.decode())
    return [url for url in parser.urls if not urlsplit(url).netloc]


def is_init_script(page: str, url: str) -> bool:
    """The split Swagger UI view's init script: the page's own path with ?script."""
    parts = urlsplit(url)
    return parts.path == page and parts.query.startswith("script")


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, static_root):
    env = process_env(
        **dockerfile_env(),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        JWT_SECRET_KEY=secrets.token_urlsafe(50),
        ENCRYPTION_KEY=secrets.token_urlsafe(32),
        ALLOWED_HOSTS=HOST,
        STATIC_ROOT=str(static_root),
        # Behind Cloud Run's front end, which sends X-Forwarded-Proto (cloudbuild.yaml).
        NUM_PROXIES="1",
        FORWARDED_ALLOW_IPS="*",
    )
    assert env["APP_MODE"] == "prod"
    with gunicorn_server(env, workers=1, threads=2) as server:
        yield server


@pytest.mark.parametrize("page", PAGES)
def test_every_script_and_stylesheet_of_the_page_loads_and_is_cached_long(server, page):
    status, headers, html = request(server.port, "GET", page, headers=HEADERS)
    assert status == 200, html
    assert headers["content-type"].startswith("text/html")
    urls = assets_of(html)
    assert any(url.endswith(".js") for url in urls) or page.startswith("/admin")
    assert any(url.endswith(".css") for url in urls) or page == "/redoc"
    for url in urls:
        status, headers, body = request(server.port, "GET", url, headers=HEADERS)
        assert status == 200, url
        assert body, url
        if is_init_script(page, url):
            assert page == "/docs"
            assert "javascript" in headers["content-type"], (url, headers["content-type"])
            assert b"SwaggerUIBundle" in body
            continue
        assert url.startswith("/static/"), url
        assert HASHED.search(url), f"{url} is not a hashed name"
        extension = os.path.splitext(urlsplit(url).path)[1]
        assert TYPES[extension] in headers["content-type"], (url, headers["content-type"])
        max_age = int(re.search(r"max-age=(\d+)", headers["cache-control"]).group(1))
        assert max_age >= 365 * 24 * 3600, (url, headers["cache-control"])


def test_scripts_are_sent_compressed_to_clients_that_accept_it(server):
    _, _, html = request(server.port, "GET", "/docs", headers=HEADERS)
    script = next(url for url in assets_of(html) if url.endswith(".js"))
    status, headers, _ = request(server.port, "GET", script, headers={**HEADERS, "Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["content-encoding"] == "gzip"


def test_root_answers_json_in_production(server):
    status, _, body = request(server.port, "GET", "/", headers=HEADERS)
    assert status == 200
    assert body["docs"] == "/docs" and body["health"] == "/health"


@pytest.mark.parametrize("page", PAGES)
def test_pages_load_their_files_without_collectstatic(anon_client, db, page):
    # The test run has no collected STATIC_ROOT (or one that serve.sh collected): either way
    # every file the page names is served.
    response = anon_client.get(page)
    assert response.status_code == 200
    urls = assets_of(response.content)
    assert urls
    for url in urls:
        asset = anon_client.get(url)
        assert asset.status_code == 200, url
        # Static files stream; the /docs init script is an ordinary response.
        assert asset.getvalue() if is_init_script(page, url) else b"".join(asset.streaming_content), url


@pytest.mark.parametrize("page", PAGES)
def test_the_pages_carry_a_content_security_policy_without_inline_scripts(server, page):
    status, headers, html = request(server.port, "GET", page, headers=HEADERS)
    assert status == 200
    policy = directives(headers["content-security-policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'none'"]
    assert inline_scripts(html) == []


def directives(header: str) -> dict[str, list[str]]:
    parts = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in parts}


class _InlineScripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inline, self._open = [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        # A JSON data block (type="application/json") is not run, so CSP does not block it.
        self._open = tag == "script" and not attrs.get("src") and attrs.get("type") != "application/json"

    def handle_data(self, data):
        if self._open and data.strip():
            self.inline.append(data.strip()[:80])

    def handle_endtag(self, tag):
        self._open = False


def inline_scripts(html: bytes) -> list[str]:
    parser = _InlineScripts()
    parser.feed(html.decode())
    return parser.inline
