"""Asking for a key's rotation: only Odock holds key values, so odock-sync can only ask."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from models.actor import Actor
from models.entities import VirtualApiKey
from models.enums import StoreCommandType
from models.errors import NotFound
from models.key_changes import KeyChange, carry_out_key_change
from models.text import clean_text


def request_key_rotation(
    session: Session, *, organisation_id: uuid.UUID, key_id: uuid.UUID, actor: Actor, reason: str
) -> VirtualApiKey:
    """Send the store a rotation request for this key of this organisation."""
    key = session.get(VirtualApiKey, key_id)
    if key is None or key.organisation_id != organisation_id:
        raise NotFound(f"no API key {key_id} in this organisation")
    reason = clean_text(reason, field="reason", max_length=500, required=False)
    change = KeyChange(
        command=StoreCommandType.ROTATE_REQUEST,
        organisation_id=organisation_id,
        scope=VirtualApiKey.id == key.id,
        actor=actor,
        reason=reason or "rotation requested",
    )
    carry_out_key_change(session, change)
    return key
