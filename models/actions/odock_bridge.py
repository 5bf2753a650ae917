"""An organisation's side of the Odock bridge: the secrets its change events are signed with.
A secret is shown once, then kept encrypted; several may be valid at once for a rotation."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from models import audit, encryption, inbound_secrets, unique_rows
from models.actor import Actor
from models.base import utcnow
from models.entities import OdockBridge, Organisation
from models.inbound_secrets import AddedSecret


def bridge_of(session: Session, organisation_id: uuid.UUID) -> OdockBridge:
    """The organisation's bridge row, created empty on first use (by one of two admins at
    once: the other goes on with it)."""
    bridge = session.get(OdockBridge, organisation_id)
    if bridge is None:
        bridge, _ = unique_rows.insert_or_find(
            session, OdockBridge, {"organisation_id": organisation_id}, {"signing_secrets": []}
        )
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
    bridge = bridge_of(session, organisation.id)
    inbound_secrets.lock(session, bridge)
    bridge.signing_secrets, added = inbound_secrets.with_added(
        bridge.signing_secrets, secret_key=secret_key, secret=secret
    )
    bridge.updated_at = utcnow()
    _audit(session, organisation, actor, "odock.signing_secret_added", added.id)
    return added


def remove_signing_secret(
    session: Session, *, organisation: Organisation, secret_id: str, actor: Actor
) -> None:
    bridge = bridge_of(session, organisation.id)
    inbound_secrets.lock(session, bridge)
    bridge.signing_secrets = inbound_secrets.without(bridge.signing_secrets, secret_id)
    bridge.updated_at = utcnow()
    _audit(session, organisation, actor, "odock.signing_secret_removed", secret_id)


def signing_secrets(session: Session, organisation_id: uuid.UUID, secret_key: str) -> list[str]:
    bridge = session.get(OdockBridge, organisation_id)
    entries = bridge.signing_secrets if bridge is not None else []
    return [encryption.decrypt(secret_key, entry["secret"]) for entry in entries]


def describe_secrets(session: Session, organisation_id: uuid.UUID) -> list[dict[str, Any]]:
    bridge = session.get(OdockBridge, organisation_id)
    entries = bridge.signing_secrets if bridge is not None else []
    return inbound_secrets.described(entries)


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
