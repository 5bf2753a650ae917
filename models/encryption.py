"""Secrets we must read back (directory bind passwords), encrypted with the service key."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from models.errors import InvalidInput


def _fernet(secret_key: str, purpose: str) -> Fernet:
    if not secret_key:
        raise InvalidInput("SECRET_KEY is not set, so secrets cannot be stored")
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"odock-sync:{purpose}".encode()
    ).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(secret_key: str, plaintext: str, *, purpose: str) -> str:
    return _fernet(secret_key, purpose).encrypt(plaintext.encode()).decode()


def decrypt(secret_key: str, token: str, *, purpose: str) -> str:
    """The plaintext; a token sealed under another key is a clear error, not garbage."""
    if not token:
        return ""
    try:
        return _fernet(secret_key, purpose).decrypt(token.encode()).decode()
    except InvalidToken:
        raise InvalidInput(
            "a stored secret cannot be decrypted; was SECRET_KEY changed? set it again"
        ) from None
