"""Key commands on their way to Odock's store, and what their acknowledgements set off.

A command is sent until the store acknowledges it; a key's commands are sent in the order
they were issued. The acknowledgement, and nothing earlier, sends the gateway invalidation:
invalidating sooner would make the gateway re-read the key from a store that still holds it
active. An acknowledgement that came late (the command needed more than one attempt, so the
store was down, slow or hanging) sends the invalidation twice: at once, and again after
ODOCK_REINVALIDATE_AFTER, for a gateway that read the key while the store was still applying
the command and cached it after the first invalidation.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session, aliased

from models import audit, outbox
from models.actions.reviews import (
    note_on_key_findings,
    record_invalidation,
    record_on_key_findings,
)
from models.actor import Actor
from models.base import utcnow
from models.entities import KeyCommand
from models.enums import KeyCommandType
from models.key_changes import STORE_KEY_UNKNOWN, store_facts

TASK_INVALIDATE_ACKNOWLEDGED = "odock.invalidate_acknowledged"
TASK_PROVE_KEYS_DEAD = "odock.prove_keys_dead"
STORE_ACTOR = Actor.system("odock-store")


@dataclass(frozen=True)
class Outgoing:
    """A command ready to send, as the contract's body."""

    id: uuid.UUID
    body: dict[str, Any]


@dataclass(frozen=True)
class Pending:
    ready: list[Outgoing]
    waiting: int  # unacknowledged commands held back behind an earlier command on their key


def pending_commands(session: Session, *, command_ids: list[uuid.UUID]) -> Pending:
    """The unacknowledged ones among these, minus those behind an earlier unacknowledged one."""
    earlier = aliased(KeyCommand)
    blocked = (
        select(earlier.id)
        .where(
            earlier.key_id == KeyCommand.key_id,
            earlier.acknowledged_at.is_(None),
            earlier.abandoned_at.is_(None),
            earlier.issued_at < KeyCommand.issued_at,
        )
        .exists()
    )
    rows = session.execute(
        select(KeyCommand, blocked)
        .where(KeyCommand.id.in_(command_ids), unsettled())
        .order_by(KeyCommand.issued_at)
    ).all()
    ready = [Outgoing(command.id, command_body(command)) for command, held in rows if not held]
    return Pending(ready=ready, waiting=len(rows) - len(ready))


def unsettled() -> ColumnElement[bool]:
    """A command still on its way: neither acknowledged nor ended by the store's 404."""
    return and_(KeyCommand.acknowledged_at.is_(None), KeyCommand.abandoned_at.is_(None))


def command_body(command: KeyCommand) -> dict[str, Any]:
    return {
        "id": str(command.id),
        "type": command.command_type.value,
        "organisation_id": str(command.organisation_id),
        "key_id": str(command.key_id),
        "reason": command.reason,
        "issued_at": command.issued_at.isoformat(),
        "owner_user_id": str(command.owner_user_id) if command.owner_user_id else None,
        "owner_team_id": str(command.owner_team_id) if command.owner_team_id else None,
    }


def record_failed_attempt(session: Session, *, command_id: uuid.UUID, error: str) -> None:
    session.execute(
        update(KeyCommand)
        .where(KeyCommand.id == command_id)
        .values(attempts=KeyCommand.attempts + 1, last_attempt_at=utcnow(), last_error=error[:500])
    )


def record_unknown_keys(session: Session, *, command_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The store answered that these commands' keys do not exist: each command ends here
    (never sent again), audited, and its key's findings say so. A revocation's key is still
    invalidated at the gateway, which may hold it cached from before the deletion."""
    now = utcnow()
    commands = list(
        session.scalars(
            select(KeyCommand).where(KeyCommand.id.in_(command_ids), unsettled()).with_for_update()
        )
    )
    for command in commands:
        command.attempts += 1
        command.last_attempt_at = command.abandoned_at = now
        command.last_error = STORE_KEY_UNKNOWN
        _audit_command(session, command, "api_key.command_abandoned", reason=STORE_KEY_UNKNOWN)
    for command in commands:
        note_on_key_findings(session, key_ids=[command.key_id], **store_facts(command))
    revokes = [str(c.id) for c in commands if _revokes(c)]
    if revokes:
        # The bridged path, as after an acknowledgement: gateway, then proof.
        outbox.enqueue(session, TASK_INVALIDATE_ACKNOWLEDGED, command_ids=revokes)
    return [command.id for command in commands]


def record_acknowledgements(
    session: Session,
    *,
    acknowledged: dict[uuid.UUID, datetime],
    reinvalidate_after: float,
    clock: dict[str, Any] | None = None,
) -> list[uuid.UUID]:
    """The store applied these commands (id -> its applied_at); the ones newly acknowledged.
    `clock` (source, arrived_at) is the revocation's time-to-kill clock, carried on to the
    gateway invalidation that completes it."""
    now = utcnow()
    commands = list(
        session.scalars(
            select(KeyCommand)
            .where(KeyCommand.id.in_(list(acknowledged)), KeyCommand.acknowledged_at.is_(None))
            .with_for_update()
        )
    )
    late = []
    for command in commands:
        command.attempts += 1
        command.last_attempt_at = command.acknowledged_at = now
        command.applied_at = acknowledged[command.id]
        command.last_error = None
        if command.attempts > 1:
            late.append(command)
        applied_at = command.applied_at.isoformat() if command.applied_at else None
        _audit_command(session, command, "api_key.command_acknowledged", applied_at=applied_at)
    revoked = sorted({c.key_id for c in commands if _revokes(c)})
    record_on_key_findings(session, key_ids=revoked, store_acknowledged_at=now)
    _invalidate_after_acknowledgement(session, commands, late, now, reinvalidate_after, clock)
    return [command.id for command in commands]


def _revokes(command: KeyCommand) -> bool:
    return command.command_type is KeyCommandType.REVOKE


def _audit_command(session: Session, command: KeyCommand, action: str, **detail: Any) -> None:
    """The store's answer to a command, on the command's key."""
    audit.record(
        session,
        actor=STORE_ACTOR,
        organisation_id=command.organisation_id,
        action=action,
        target_type="api_key",
        target_id=command.key_id,
        after={
            "command_id": str(command.id),
            "type": command.command_type.value,
            "attempts": command.attempts,
            **detail,
        },
    )


def _invalidate_after_acknowledgement(
    session: Session,
    commands: list[KeyCommand],
    late: list[KeyCommand],
    now: datetime,
    reinvalidate_after: float,
    clock: dict[str, Any] | None,
) -> None:
    to_invalidate = [c for c in commands if c.command_type is not KeyCommandType.ROTATE_REQUEST]
    if to_invalidate:
        outbox.enqueue(
            session,
            TASK_INVALIDATE_ACKNOWLEDGED,
            command_ids=[str(c.id) for c in to_invalidate],
            **(clock or {}),
        )
    late = [c for c in late if c in to_invalidate]
    if late:
        again = now + timedelta(seconds=reinvalidate_after)
        outbox.enqueue(
            session,
            TASK_INVALIDATE_ACKNOWLEDGED,
            command_ids=[str(c.id) for c in late],
            not_before=again.isoformat(),
        )


def settled() -> ColumnElement[bool]:
    """The store has answered the command for good: acknowledged, or no such key (404)."""
    return or_(KeyCommand.acknowledged_at.is_not(None), KeyCommand.abandoned_at.is_not(None))


def acknowledged_keys(session: Session, *, command_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The keys of those of these commands that the store settled: ready to invalidate."""
    return sorted(
        set(
            session.scalars(
                select(KeyCommand.key_id).where(KeyCommand.id.in_(command_ids), settled())
            )
        )
    )


def record_gateway_invalidation(session: Session, *, command_ids: list[uuid.UUID]) -> None:
    """The gateway forgot these commands' keys: mark commands and findings, ask for proof."""
    now = utcnow()
    commands = list(
        session.scalars(select(KeyCommand).where(KeyCommand.id.in_(command_ids), settled()))
    )
    for command in commands:
        command.gateway_invalidated_at = now
    record_invalidation(
        session, key_ids=sorted({c.key_id for c in commands}), reason="store acknowledged", at=now
    )
    revokes = [str(c.id) for c in commands if _revokes(c)]
    if revokes:
        outbox.enqueue(session, TASK_PROVE_KEYS_DEAD, command_ids=revokes)
