"""Encryption at rest of the secrets the product stores (organizations' provider API keys).

Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from settings.ENCRYPTION_KEY by HKDF-
SHA256, so ENCRYPTION_KEY may be any high-entropy string rather than Fernet's own format.
"""

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_INFO = b"raptorflow provider api keys v1"


class DecryptionFailed(Exception):
    """The ciphertext was not made with the current ENCRYPTION_KEY (rotated or tampered)."""


def _fernet() -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        settings.ENCRYPTION_KEY.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionFailed("Stored secret cannot be decrypted with the current ENCRYPTION_KEY") from None
