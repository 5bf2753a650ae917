"""Read models of the mass-change gate: the held changes, the batches, the gates' state."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.entities import MassChange, MassChangeGate, User
from models.enums import ChangeStatus

LISTED = 500


def list_holds(
    session: Session,
    organisation_id: uuid.UUID,
    *,
    status: ChangeStatus | None = ChangeStatus.HELD,
    batch_id: uuid.UUID | None = None,
    limit: int = LISTED,
) -> list[dict[str, Any]]:
    """Held changes (or those decided since, by status), oldest first, with the person."""
    query = (
        select(MassChange, User.email, User.status)
        .join(User, User.id == MassChange.user_id)
        .where(MassChange.organisation_id == organisation_id, MassChange.batch_id.is_not(None))
        .order_by(MassChange.created_at, MassChange.id)
        .limit(limit)
    )
    if status is not None:
        query = query.where(MassChange.status == status)
    if batch_id is not None:
        query = query.where(MassChange.batch_id == batch_id)
    return [
        hold_view(held, email=email, user_status=user_status.value)
        for held, email, user_status in session.execute(query)
    ]


def hold_views(session: Session, holds: list[MassChange]) -> list[dict[str, Any]]:
    people = {
        user.id: user
        for user in session.scalars(select(User).where(User.id.in_({h.user_id for h in holds})))
    }
    return [
        hold_view(h, email=people[h.user_id].email, user_status=people[h.user_id].status.value)
        for h in holds
    ]


def hold_view(held: MassChange, *, email: str = "", user_status: str = "") -> dict[str, Any]:
    return {
        "id": str(held.id),
        "batch_id": str(held.batch_id) if held.batch_id else None,
        "source": held.source.value,
        "kind": held.kind.value,
        "status": held.status.value,
        "user_id": str(held.user_id),
        "user_email": email,
        "user_status": user_status,
        "reason": held.reason,
        "requested_by": held.actor,
        "created_at": held.created_at.isoformat(),
        "decided_at": held.decided_at.isoformat() if held.decided_at else None,
        "decided_by": held.decided_by or None,
    }


def tripped_gates(session: Session, organisation_id: uuid.UUID) -> list[dict[str, Any]]:
    """The sources whose destructive changes are being held right now."""
    gates = session.scalars(
        select(MassChangeGate)
        .where(
            MassChangeGate.organisation_id == organisation_id, MassChangeGate.batch_id.is_not(None)
        )
        .order_by(MassChangeGate.source)
    )
    return [
        {
            "source": gate.source.value,
            "batch_id": str(gate.batch_id),
            "tripped_at": gate.tripped_at.isoformat() if gate.tripped_at else None,
        }
        for gate in gates
    ]
