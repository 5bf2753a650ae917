"""An organisation's side of the Odock bridge: the secrets its change events are signed with.
A secret is shown once, then kept encrypted; several may be valid at once for a rotation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from connectors.signed_webhooks import SECRET_PREFIX, new_signing_secret
from models import audit, encryption
from models.actions.event_hooks import MAX_SIGNING_SECRETS
from models.actor import Actor
from models.base import utcnow
from models.entities import OdockBridge, Organisation
from models.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class AddedSecret:
    id: str
    secret: str


def bridge_of(session: Session, organisation_id: uuid.UUID) -> OdockBridge:
    """The organisation's bridge row, created empty on first use."""
    bridge = session.get(OdockBridge, organisation_id)
    if bridge is None:
        bridge = OdockBridge(organisation_id=organisation_id, signing_secrets=[])
        session.add(bridge)
        session.flush()
    return bridge


def add_signing_secret(
    session: Session,
    *,
    organisation: Organisation,
    secret_key: str,
    actor: Actor,
    secret: str | None = None,
) -> AddedSecret:
    """Add a secret (generated unless given); older ones stay valid until removed."""
    secret = secret or new_signing_secret()
    if not secret.startswith(SECRET_PREFIX) or len(secret) < len(SECRET_PREFIX) + 24:
        raise InvalidInput("a signing secret looks like whsec_<base64, 24+ bytes>", field="secret")
    bridge = bridge_of(session, organisation.id)
    if len(bridge.signing_secrets) >= MAX_SIGNING_SECRETS:
        raise InvalidInput(f"at most {MAX_SIGNING_SECRETS} signing secrets; remove an old one")
    entry = {
        "id": uuid.uuid4().hex[:12],
        "secret": encryption.encrypt(secret_key, secret),
        "created_at": utcnow().isoformat(),
        "hint": secret[-4:],
    }
    bridge.signing_secrets = [*bridge.signing_secrets, entry]
    bridge.updated_at = utcnow()
    _audit(session, organisation, actor, "odock.signing_secret_added", entry["id"])
    return AddedSecret(id=entry["id"], secret=secret)


def remove_signing_secret(
    session: Session, *, organisation: Organisation, secret_id: str, actor: Actor
) -> None:
    bridge = bridge_of(session, organisation.id)
    kept = [entry for entry in bridge.signing_secrets if entry["id"] != secret_id]
    if len(kept) == len(bridge.signing_secrets):
        raise NotFound("no signing secret with that id")
    bridge.signing_secrets = kept
    bridge.updated_at = utcnow()
    _audit(session, organisation, actor, "odock.signing_secret_removed", secret_id)


def signing_secrets(session: Session, organisation_id: uuid.UUID, secret_key: str) -> list[str]:
    bridge = session.get(OdockBridge, organisation_id)
    entries = bridge.signing_secrets if bridge is not None else []
    return [encryption.decrypt(secret_key, entry["secret"]) for entry in entries]


def describe_secrets(session: Session, organisation_id: uuid.UUID) -> list[dict[str, Any]]:
    bridge = session.get(OdockBridge, organisation_id)
    entries = bridge.signing_secrets if bridge is not None else []
    return [{"id": e["id"], "created_at": e["created_at"], "ends_with": e["hint"]} for e in entries]


def _audit(
    session: Session, organisation: Organisation, actor: Actor, action: str, secret_id: str
) -> None:
    audit.record(
        session,
        actor=actor,
        organisation_id=organisation.id,
        action=action,
        target_type="organisation",
        target_id=organisation.id,
        after={"id": secret_id},
    )
