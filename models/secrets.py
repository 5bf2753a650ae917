"""Random secrets, their stored hashes, and constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret(prefix: str, nbytes: int = 32) -> str:
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def hash_secret(secret: str) -> str:
    """Tokens carry 256 random bits, so a plain SHA-256 is a safe, indexable hash."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(presented: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(presented), stored_hash)


def same_text(presented: str, expected: str) -> bool:
    """Constant-time equality of a value a client sent with one we made; compared as bytes,
    since hmac.compare_digest refuses str with non-ASCII characters (a TypeError, a 500)."""
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
