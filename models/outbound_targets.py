"""What every destination odock-sync signs and sends to holds (notification hooks, audit log
streams): a name, a URL the outbound URL policy allows, signing secrets stored sealed.

The URL's name is resolved before the caller's transaction begins (`resolved_ahead`): a slow
name server must not hold a transaction open, which on SQLite holds the database's write lock
(every SCIM deactivation would wait on it)."""

from __future__ import annotations

from typing import Any

from connectors.outbound import ResolvedNames, UnsafeUrl, UrlPolicy, check_url, http_target
from models.base import new_id, utcnow
from models.encryption import encrypt
from models.errors import InvalidInput


def validate_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("name must be 1 to 200 characters", field="name")
    return name


def resolved_ahead(policy: UrlPolicy, *targets: str | None) -> ResolvedNames:
    """The names of these URLs resolved and judged now, before the caller's transaction; what
    is not an http(s) URL is left to validate_url to refuse."""
    found = (http_target(target.strip()) for target in targets if target)
    return ResolvedNames.ahead(policy, [target for target in found if target])


def validate_url(target: str, policy: UrlPolicy | ResolvedNames) -> str:
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
