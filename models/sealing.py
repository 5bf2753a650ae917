"""Encrypting secrets the service must read back (hook signing secrets) with its secret key."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SealBroken(Exception):
    """The sealed value cannot be opened (another secret key, or tampering)."""


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"odock-sync/seal/" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(secret_key: str, plaintext: str) -> str:
    return _fernet(secret_key).encrypt(plaintext.encode()).decode()


def unseal(secret_key: str, sealed: str) -> str:
    try:
        return _fernet(secret_key).decrypt(sealed.encode()).decode()
    except InvalidToken as exc:
        raise SealBroken("sealed value cannot be opened with this secret key") from exc
