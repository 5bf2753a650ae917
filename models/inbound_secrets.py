"""The secrets a sender signs what it delivers to us with (an IdP's event hooks, the Odock
bridge): generated or given, shown once, then kept encrypted. Several may be valid at once,
so a sender rotates by adding the new one before removing the old."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from connectors.signed_webhooks import key_length, new_signing_secret
from models import encryption, locked_rows
from models.base import Base, utcnow
from models.errors import InvalidInput, NotFound

MAX_SIGNING_SECRETS = 5
MIN_KEY_BYTES = 24

Entries = list[dict[str, Any]]


@dataclass(frozen=True)
class AddedSecret:
    id: str
    secret: str


def lock(session: Session, row: Base) -> None:
    """Lock the row that keeps the entries and read them again, before changing them: the
    list is one column, read, changed and written back, so of two admins changing it at once
    the later would otherwise write back what it read before the earlier wrote (a secret
    added lost, a removed one back in)."""
    locked_rows.locked_or_404(session, row, "the signing secrets' configuration is gone")


def with_added(
    entries: Entries, *, secret_key: str, secret: str | None = None
) -> tuple[Entries, AddedSecret]:
    """The entries with one more secret (generated unless given), and that secret."""
    secret = secret or new_signing_secret()
    if key_length(secret) < MIN_KEY_BYTES:
        raise InvalidInput(
            f"a signing secret is [whsec_]<base64 of {MIN_KEY_BYTES}+ bytes>", field="secret"
        )
    if len(entries) >= MAX_SIGNING_SECRETS:
        raise InvalidInput(f"at most {MAX_SIGNING_SECRETS} signing secrets; remove an old one")
    entry = {
        "id": uuid.uuid4().hex[:12],
        "secret": encryption.encrypt(secret_key, secret),
        "created_at": utcnow().isoformat(),
        "hint": secret[-4:],
    }
    return [*entries, entry], AddedSecret(id=entry["id"], secret=secret)


def without(entries: Entries, secret_id: str) -> Entries:
    """The entries less the one of this id (NotFound when none has it)."""
    kept = [entry for entry in entries if entry["id"] != secret_id]
    if len(kept) == len(entries):
        raise NotFound("no signing secret with that id")
    return kept


def described(entries: Entries) -> list[dict[str, Any]]:
    """What an admin may see of them: which exist, never a secret. Entries from before the
    hint was kept have none."""
    return [
        {"id": e["id"], "created_at": e["created_at"], "ends_with": e.get("hint")} for e in entries
    ]
