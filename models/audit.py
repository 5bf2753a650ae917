"""Writing the audit trail; every domain operation that changes state calls `record`."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from models.actor import Actor
from models.entities import AuditEvent


def record(
    session: Session,
    *,
    actor: Actor,
    organisation_id: uuid.UUID | None,
    action: str,
    target_type: str,
    target_id: uuid.UUID | str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        organisation_id=organisation_id,
        source=actor.source,
        actor=str(actor),
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        before=before,
        after=after,
    )
    session.add(event)
    return event
