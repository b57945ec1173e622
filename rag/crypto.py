"""Encryption at rest of the secrets the product stores (organizations' provider API keys).

Fernet (AES-128-CBC + HMAC-SHA256) with keys derived by HKDF-SHA256 from the configured
secrets, so they may be any high-entropy strings rather than Fernet's own format. The keys
are settings.ENCRYPTION_KEYS (newest first) when set, else settings.ENCRYPTION_KEY alone:
new ciphertexts use the newest, and any of them decrypts (MultiFernet). To rotate, put the
new key first in ENCRYPTION_KEYS, run `manage.py rotate_encryption_keys`, then drop the old.
"""

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_INFO = b"raptorflow provider api keys v1"


class DecryptionFailed(Exception):
    """The ciphertext was made with none of the configured keys (retired or tampered)."""


def _keys() -> list[str]:
    return list(settings.ENCRYPTION_KEYS) or [settings.ENCRYPTION_KEY]


def _derive(secret: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _fernet() -> MultiFernet:
    return MultiFernet([_derive(secret) for secret in _keys()])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionFailed("Stored secret cannot be decrypted with any configured encryption key") from None


def uses_newest_key(ciphertext: str) -> bool:
    try:
        _derive(_keys()[0]).decrypt(ciphertext.encode())
    except InvalidToken:
        return False
    return True


def rotate(ciphertext: str) -> str:
    """The same secret encrypted with the newest key (DecryptionFailed if no key opens it)."""
    try:
        return _fernet().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionFailed("Stored secret cannot be decrypted with any configured encryption key") from None
