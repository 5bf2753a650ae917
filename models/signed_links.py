"""Signed, expiring links (HMAC with the service's secret key) for one-click actions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from models.base import utcnow
from models.errors import Forbidden, InvalidInput

REVIEW_ACK_PURPOSE = "review.ack"  # the acknowledgement link in review notifications


@dataclass(frozen=True)
class LinkClaim:
    purpose: str
    subject: str
    actor: str
    expires_at: datetime
    extra: Mapping[str, str] = field(default_factory=dict)


def make_token(
    secret_key: str,
    *,
    purpose: str,
    subject: str,
    actor: str,
    lifetime: timedelta,
    issued_at: datetime | None = None,
    extra: Mapping[str, str] | None = None,
) -> str:
    """A token that is the same for the same inputs (so a retried message is byte-identical);
    `extra` is more the token vouches for (names to texts)."""
    expires = int(((issued_at or utcnow()) + lifetime).timestamp())
    fields = {"p": purpose, "s": subject, "a": actor, "e": expires}
    body = json.dumps(fields | ({"x": dict(extra)} if extra else {}), separators=(",", ":"))
    encoded = _b64(body.encode())
    return f"{encoded}.{_b64(_mac(secret_key, encoded))}"


def read_token(secret_key: str, token: str, *, purpose: str) -> LinkClaim:
    """The claim of a valid, unexpired token for this purpose; Forbidden otherwise."""
    encoded, _, signature = token.partition(".")
    if not encoded or not signature or len(token) > 2000:
        raise InvalidInput("the link is malformed")
    try:
        presented = _unb64(signature)
    except ValueError:
        raise InvalidInput("the link is malformed") from None
    if not hmac.compare_digest(presented, _mac(secret_key, encoded)):
        raise Forbidden("the link's signature is not valid")
    try:
        data = json.loads(_unb64(encoded))
        claim = LinkClaim(
            purpose=str(data["p"]),
            subject=str(data["s"]),
            actor=str(data["a"]),
            expires_at=datetime.fromtimestamp(int(data["e"]), tz=utcnow().tzinfo),
            extra={str(name): str(value) for name, value in data.get("x", {}).items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidInput("the link is malformed") from None
    if claim.purpose != purpose:
        raise Forbidden("the link is not for this action")
    if claim.expires_at < utcnow():
        raise Forbidden("the link has expired")
    return claim


def _mac(secret_key: str, encoded: str) -> bytes:
    return hmac.new(secret_key.encode(), encoded.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("bad base64") from exc
