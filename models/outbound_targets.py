"""What every destination odock-sync signs and sends to holds (notification hooks, audit log
streams): a name, a URL the outbound URL policy allows, signing secrets stored sealed."""

from __future__ import annotations

from typing import Any

from connectors.outbound import UnsafeUrl, UrlPolicy, check_url
from models.base import new_id, utcnow
from models.encryption import encrypt
from models.errors import InvalidInput


def validate_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("name must be 1 to 200 characters", field="name")
    return name


def validate_url(target: str, policy: UrlPolicy) -> str:
    try:
        return check_url(target.strip(), policy)
    except UnsafeUrl as exc:
        raise InvalidInput(exc.reason, field="target") from None


def sealed_secret(secret_key: str, secret: str, *, purpose: str) -> dict[str, Any]:
    """A signing-secret entry as stored: encrypted for its purpose, with no expiry yet."""
    return {
        "id": str(new_id()),
        "sealed": encrypt(secret_key, secret, purpose=purpose),
        "created_at": utcnow().isoformat(),
        "expires_at": None,
    }
