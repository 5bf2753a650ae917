"""Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature): sign and verify.

Verification runs on the raw body before anything parses it, accepts any of several secrets
(so a secret can be rotated without downtime), and turns every malformed header into one
clear refusal.
"""

from __future__ import annotations

import base64
import math
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
SECRET_PREFIX = "whsec_"  # noqa: S105 (the format marker, not a secret)


class SignatureRejected(Exception):
    """The delivery is not signed by a current secret; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_signing_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def key_length(secret: str) -> int:
    """How many bytes of key the secret gives, read as the reference library reads it
    (whsec_ optional, padding optional); 0 when it gives none, so it could never verify."""
    try:
        return len(base64.b64decode(secret.removeprefix(SECRET_PREFIX) + "=="))
    except ValueError:  # binascii.Error, or a character outside ASCII
        return 0


def sign(
    secret: str, *, msg_id: str, body: bytes, timestamp: datetime | None = None
) -> dict[str, str]:
    """The three headers to send with `body`."""
    moment = timestamp or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=moment, data=body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }


def sign_all(
    secrets_: Sequence[str], *, msg_id: str, body: bytes, timestamp: datetime | None = None
) -> dict[str, str]:
    """The headers signed with every secret (signatures space-separated, one timestamp for
    all), so a rotation never breaks receivers; no headers without a secret."""
    if not secrets_:
        return {}
    moment = timestamp or datetime.now(UTC)
    signed = [sign(secret, msg_id=msg_id, body=body, timestamp=moment) for secret in secrets_]
    return {**signed[0], "webhook-signature": " ".join(h["webhook-signature"] for h in signed)}


def verify(
    secrets_: Iterable[str],
    *,
    body: bytes,
    headers: Mapping[str, str],
    tolerance_seconds: int = 300,
) -> str:
    """Check the delivery; return its webhook-id or raise SignatureRejected."""
    reason = malformed(headers)
    if reason:
        raise SignatureRejected(reason)
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered["webhook-id"]
    _check_timestamp(lowered["webhook-timestamp"], tolerance_seconds)
    for secret in secrets_:
        if _matches(secret, body, lowered):
            return msg_id
    raise SignatureRejected("no matching signature")


def malformed(headers: Mapping[str, str]) -> str | None:
    """Why the headers cannot verify whatever the body and the secrets (a header absent, a
    timestamp that is no time, no v1 signature), or None: what the body is not needed for."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if not all(lowered.get(name) for name in SIGNATURE_HEADERS):
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    if not math.isfinite(_seconds(lowered["webhook-timestamp"])):
        return "webhook-timestamp is not a number"
    if not any(entry.startswith("v1,") for entry in lowered["webhook-signature"].split(" ")):
        return "no matching signature"  # only v1 signatures are ever checked
    return None


def _seconds(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return math.nan  # "nan" compares false with any tolerance; "inf" is no time


def _check_timestamp(value: str, tolerance_seconds: int) -> None:
    sent = _seconds(value)
    if abs(datetime.now(UTC).timestamp() - sent) > tolerance_seconds:
        raise SignatureRejected("webhook-timestamp is outside the tolerance")


def _matches(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    """The signature is over the bytes as received: whether they are UTF-8 JSON is the body's
    check, answered as such, not a signature refusal."""
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except Exception:  # the library raises several types for malformed signatures
        return False
    return True
