"""Writing the audit trail; every domain operation that changes state calls `record`."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from sqlalchemy.orm import Session

from models import request_ids
from models.actor import Actor
from models.base import new_row
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
    event = new_row(
        AuditEvent,
        organisation_id=organisation_id,
        source=actor.source,
        actor=str(actor),
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        before=before,
        after=after,
        actor_user_id=actor.user_id,
        request_id=request_ids.current(),
    )
    session.add(event)
    return event


class Audited(Protocol):
    """Anything an organisation owns and audits by its own id."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def organisation_id(self) -> uuid.UUID: ...


def record_change(
    session: Session,
    *,
    actor: Actor,
    subject: Audited,
    action: str,
    target_type: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """An audit event about one object, in that object's organisation."""
    return record(
        session,
        actor=actor,
        organisation_id=subject.organisation_id,
        action=action,
        target_type=target_type,
        target_id=subject.id,
        before=before,
        after=after,
    )
