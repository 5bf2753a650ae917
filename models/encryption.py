"""Secrets we must read back (signing keys), encrypted at rest with a key from SECRET_KEY.

Secrets we only compare (a hook's authorization value) are stored as a keyed hash instead,
so a leaked database alone lets nobody guess even a short, hand-picked value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class UndecryptableSecret(Exception):
    """Encrypted under another SECRET_KEY (or tampered with)."""


@lru_cache(maxsize=8)
def _derive(secret_key: str, purpose: bytes) -> bytes:
    if not secret_key:
        raise ValueError("SECRET_KEY is required to protect stored secrets")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret_key.encode()
    )


@lru_cache(maxsize=8)
def _fernet(secret_key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derive(secret_key, b"odock-sync/encrypt/v1")))


def encrypt(secret_key: str, plaintext: str) -> str:
    return _fernet(secret_key).encrypt(plaintext.encode()).decode()


def decrypt(secret_key: str, token: str) -> str:
    try:
        return _fernet(secret_key).decrypt(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableSecret("stored secret cannot be decrypted with SECRET_KEY") from None


def keyed_hash(secret_key: str, value: str) -> str:
    """HMAC-SHA256 of `value` under a key derived from SECRET_KEY."""
    key = _derive(secret_key, b"odock-sync/hash/v1")
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def matches_keyed_hash(secret_key: str, presented: str, stored: str) -> bool:
    return hmac.compare_digest(keyed_hash(secret_key, presented), stored)
