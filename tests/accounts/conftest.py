"""A fake Google at the HTTP boundary: its token endpoint and signing certificates are
mocked with `responses`, and ID tokens are real RS256 JWTs signed by a key whose
certificate the mocked certs endpoint publishes, so allauth's verification runs for real."""

import datetime as dt
import time
import uuid
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.core.cache import cache

CLIENT_ID = "raptorflow-test.apps.googleusercontent.com"
CLIENT_SECRET = "test-google-secret"
TOKEN_URL = "https://oauth2.googleapis.com/token"
CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
KID = "test-key-1"


def _keypair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "google-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem_key, cert.public_bytes(serialization.Encoding.PEM).decode()


GOOGLE_KEY, GOOGLE_CERT = _keypair()
OTHER_KEY, _ = _keypair()


class FakeGoogle:
    def __init__(self, mock: responses.RequestsMock):
        self.mock = mock
        mock.add(responses.GET, CERTS_URL, json={KID: GOOGLE_CERT})

    def id_token(self, *, key=GOOGLE_KEY, **overrides) -> str:
        now = int(time.time())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": CLIENT_ID,
            "sub": "1000001",
            "email": "olivia@acme.test",
            "email_verified": True,
            "name": "Olivia Owner",
            "iat": now,
            "exp": now + 3600,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})

    def will_exchange_code(self, code: str, **claims):
        """Google's token endpoint answers `code` with an ID token carrying `claims`."""
        token = self.id_token(**claims)

        def callback(request):
            form = parse_qs(request.body)
            if form.get("code") != [code]:
                return 400, {}, '{"error": "invalid_grant"}'
            return 200, {"Content-Type": "application/json"}, (
                '{"access_token": "ya29.test", "expires_in": 3599, "token_type": "Bearer", '
                f'"scope": "openid email profile", "id_token": "{token}"}}'
            )

        self.mock.add_callback(responses.POST, TOKEN_URL, callback=callback)

    def token_requests(self):
        return [call.request for call in self.mock.calls if call.request.url.startswith(TOKEN_URL)]


@pytest.fixture
def google_settings(settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {
            **settings.SOCIALACCOUNT_PROVIDERS["google"],
            "APPS": [{"client_id": CLIENT_ID, "secret": CLIENT_SECRET, "key": ""}],
        }
    }
    settings.GOOGLE_REDIRECT_URI = "http://testserver/api/auth/google/callback"
    return settings


@pytest.fixture
def fake_google(google_settings, db):
    cache.clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeGoogle(mock)


def start_login(client) -> dict:
    response = client.post("/api/auth/google/login")
    assert response.status_code == 200, response.content
    body = response.json()
    body["params"] = {k: v[0] for k, v in parse_qs(urlparse(body["authorization_url"]).query).items()}
    return body
