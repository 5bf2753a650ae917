"""Secrets the service keeps: encrypted when it must read them back, keyed-hashed otherwise.

Read back (directory bind passwords, signing secrets of hooks): Fernet under a key derived
from SECRET_KEY per purpose. Only compared (a hook's authorization value): an HMAC under
another derived key, so a leaked database alone lets nobody guess even a short value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from models.errors import InvalidInput


class UndecryptableSecret(InvalidInput):
    """Encrypted under another SECRET_KEY (or tampered with)."""


@lru_cache(maxsize=16)
def _derive(secret_key: str, purpose: str) -> bytes:
    if not secret_key:
        raise InvalidInput("SECRET_KEY is not set, so secrets cannot be stored")
    info = f"odock-sync/{purpose}/v1".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        secret_key.encode()
    )


def _fernet(secret_key: str, purpose: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derive(secret_key, f"encrypt/{purpose}")))


def encrypt(secret_key: str, plaintext: str, *, purpose: str = "secrets") -> str:
    return _fernet(secret_key, purpose).encrypt(plaintext.encode()).decode()


def decrypt(secret_key: str, token: str, *, purpose: str = "secrets") -> str:
    """The plaintext; a token sealed under another key is a clear error, not garbage."""
    if not token:
        return ""
    try:
        return _fernet(secret_key, purpose).decrypt(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableSecret(
            "a stored secret cannot be decrypted; was SECRET_KEY changed? set it again"
        ) from None


def keyed_hash(secret_key: str, value: str) -> str:
    """HMAC-SHA256 of `value` under a key derived from SECRET_KEY."""
    return hmac.new(_derive(secret_key, "hash"), value.encode(), hashlib.sha256).hexdigest()


def matches_keyed_hash(secret_key: str, presented: str, stored: str) -> bool:
    return hmac.compare_digest(keyed_hash(secret_key, presented), stored)
