"""Store commands (a key's or a budget's) on their way to Odock's store, and what their
acknowledgements set off.

Each command rides a cut-off (models/actions/cutoffs.py): whoever holds the key's lease (the
fast path after commit, or the reaper) sends the key's unsettled commands in the order they were
issued, until the store acknowledges. The acknowledgement, and nothing earlier, lets the gateway
invalidation go: invalidating sooner would make the gateway re-read the key from a store that
still holds it active. An acknowledgement that came late (the command needed more than one
attempt, so the store was down, slow or hanging) plans a second invalidation (a cut-off due
ODOCK_REINVALIDATE_AFTER later), for a gateway that read the key while the store was still
applying the command and cached it after the first invalidation.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from models import audit
from models.actions import cutoffs
from models.actions.reviews import (
    note_on_command_findings,
    record_invalidation,
    record_on_command_findings,
)
from models.actor import Actor
from models.base import utcnow
from models.entities import KeyCutoff, StoreCommand
from models.enums import StoreCommandType
from models.key_changes import STORE_KEY_UNKNOWN, store_facts

STORE_ACTOR = Actor.system("odock-store")
GATEWAY_COMMANDS = cutoffs.GATEWAY_COMMANDS


@dataclass(frozen=True)
class Outgoing:
    """A command ready to send, as the contract's body."""

    id: uuid.UUID
    body: dict[str, Any]


def unsettled_by_key(
    session: Session, *, key_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Outgoing]]:
    """These keys' commands still on their way, per key in the order they were issued."""
    commands = session.scalars(
        select(StoreCommand)
        .where(StoreCommand.subject_id.in_(key_ids), unsettled())
        .order_by(StoreCommand.issued_at, StoreCommand.id)
    )
    by_key: dict[uuid.UUID, list[Outgoing]] = {}
    for command in commands:
        by_key.setdefault(command.subject_id, []).append(
            Outgoing(command.id, command_body(command))
        )
    return by_key


def keys_of(session: Session, *, command_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    return sorted(
        set(
            session.scalars(select(StoreCommand.subject_id).where(StoreCommand.id.in_(command_ids)))
        )
    )


def unsettled() -> ColumnElement[bool]:
    """A command still on its way: neither acknowledged nor ended by the store's 404."""
    return and_(StoreCommand.acknowledged_at.is_(None), StoreCommand.abandoned_at.is_(None))


def command_body(command: StoreCommand) -> dict[str, Any]:
    if command.subject_type == "budget":
        return {
            "id": str(command.id),
            "type": command.command_type.value,
            "organisation_id": str(command.organisation_id),
            "budget_id": str(command.subject_id),
            "reason": command.reason,
            "issued_at": command.issued_at.isoformat(),
        }
    return {
        "id": str(command.id),
        "type": command.command_type.value,
        "organisation_id": str(command.organisation_id),
        "key_id": str(command.subject_id),
        "reason": command.reason,
        "issued_at": command.issued_at.isoformat(),
        "owner_user_id": str(command.owner_user_id) if command.owner_user_id else None,
        "owner_team_id": str(command.owner_team_id) if command.owner_team_id else None,
    }


def record_attempt(session: Session, *, command_id: uuid.UUID) -> None:
    """A send of this command starts now: counted before the call, as its cut-off's claim is,
    so a caller killed mid-call still counts (and the store's late answer plans the second
    gateway invalidation that a re-sent command needs)."""
    session.execute(
        update(StoreCommand)
        .where(StoreCommand.id == command_id, unsettled())
        .values(attempts=StoreCommand.attempts + 1, last_attempt_at=utcnow())
    )


def record_failed_attempt(session: Session, *, command_id: uuid.UUID, error: str) -> None:
    """The attempt (counted by `record_attempt`) failed."""
    session.execute(
        update(StoreCommand).where(StoreCommand.id == command_id).values(last_error=error[:500])
    )


def record_unknown_keys(session: Session, *, command_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The store answered that these commands' keys do not exist: each command ends here
    (never sent again), audited, and its key's findings say so. A revocation's key is still
    invalidated at the gateway, which may hold it cached from before the deletion (the
    cut-off's caller calls it next)."""
    now = utcnow()
    commands = list(
        session.scalars(
            select(StoreCommand)
            .where(StoreCommand.id.in_(command_ids), unsettled())
            .with_for_update()
        )
    )
    for command in commands:
        command.abandoned_at = now  # the attempt was counted when it started
        command.last_error = STORE_KEY_UNKNOWN
        _audit_command(session, command, "api_key.command_abandoned", reason=STORE_KEY_UNKNOWN)
    for command in commands:
        note_on_command_findings(session, commands=[command], **store_facts(command))
    return [command.id for command in commands]


def record_acknowledgements(
    session: Session,
    *,
    acknowledged: dict[uuid.UUID, datetime],
    reinvalidate_after: float,
) -> list[uuid.UUID]:
    """The store applied these commands (id -> its applied_at); the ones newly acknowledged.
    The gateway is called next by the cut-off's caller; a late one plans a second call."""
    now = utcnow()
    commands = list(
        session.scalars(
            select(StoreCommand)
            .where(StoreCommand.id.in_(list(acknowledged)), StoreCommand.acknowledged_at.is_(None))
            .with_for_update()
        )
    )
    late = []
    for command in commands:
        command.acknowledged_at = now  # the attempt was counted when it started
        command.applied_at = acknowledged[command.id]
        command.last_error = None
        if command.attempts > 1:
            late.append(command)
        applied_at = command.applied_at.isoformat() if command.applied_at else None
        _audit_command(session, command, "api_key.command_acknowledged", applied_at=applied_at)
    revokes = [c for c in commands if _revokes(c)]
    record_on_command_findings(session, commands=revokes, store_acknowledged_at=now)
    again = now + timedelta(seconds=reinvalidate_after)
    for key_id, organisation_id in sorted(
        {(c.subject_id, c.organisation_id) for c in late if _invalidates(c)}
    ):
        cutoffs.open_reinvalidation(
            session, organisation_id=organisation_id, key_id=key_id, at=again
        )
    return [command.id for command in commands]


def _revokes(command: StoreCommand) -> bool:
    return command.command_type is StoreCommandType.REVOKE


def _audit_command(session: Session, command: StoreCommand, action: str, **detail: Any) -> None:
    """The store's answer to a command, on the command's key (or budget)."""
    target = "budget" if command.subject_type == "budget" else "api_key"
    audit.record(
        session,
        actor=STORE_ACTOR,
        organisation_id=command.organisation_id,
        action=action.replace("api_key.", f"{target}.", 1),
        target_type=target,
        target_id=command.subject_id,
        after={
            "command_id": str(command.id),
            "type": command.command_type.value,
            "revocation_id": str(command.revocation_id) if command.revocation_id else None,
            "attempts": command.attempts,
            **detail,
        },
    )


def _invalidates(command: StoreCommand) -> bool:
    """The gateway must forget the key after the store applied this command."""
    return command.command_type in GATEWAY_COMMANDS


def settled() -> ColumnElement[bool]:
    """The store has answered the command for good: acknowledged, or no such key (404)."""
    return or_(StoreCommand.acknowledged_at.is_not(None), StoreCommand.abandoned_at.is_not(None))


def acknowledged_keys(session: Session, *, command_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The keys of those of these commands that the store settled: ready to invalidate."""
    return sorted(
        set(
            session.scalars(
                select(StoreCommand.subject_id).where(StoreCommand.id.in_(command_ids), settled())
            )
        )
    )


def keys_for_the_gateway(session: Session, *, key_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Those of these keys with a pending cut-off the gateway must hear about: its command
    settled and one the gateway caches (or, from before 0029, no command named). The others'
    cut-offs (a rotation request) are done with the store's answer."""
    needs_gateway = or_(
        KeyCutoff.command_id.is_(None),
        and_(StoreCommand.command_type.in_(GATEWAY_COMMANDS), settled()),
    )
    return sorted(
        set(
            session.scalars(
                select(KeyCutoff.key_id)
                .outerjoin(StoreCommand, StoreCommand.id == KeyCutoff.command_id)
                .where(
                    KeyCutoff.key_id.in_(key_ids),
                    KeyCutoff.acknowledged_at.is_(None),
                    KeyCutoff.command != cutoffs.PROOF,
                    needs_gateway,
                )
            )
        )
    )


def record_gateway_invalidation(
    session: Session, *, key_ids: list[uuid.UUID], called_at: datetime
) -> list[cutoffs.Clock]:
    """The gateway forgot these keys in a call made at `called_at`: mark their commands the
    store settled before it, close the cut-offs, and open a proof cut-off for each revocation
    (models/actions/key_proofs.py). The time-to-kill clocks of the revocations now complete."""
    now = utcnow()
    commands = list(
        session.scalars(
            select(StoreCommand).where(
                StoreCommand.subject_id.in_(key_ids),
                StoreCommand.command_type.in_(GATEWAY_COMMANDS),
                StoreCommand.gateway_invalidated_at.is_(None),
                settled(),
            )
        )
    )
    for command in commands:
        command.gateway_invalidated_at = now
    clocks = record_invalidation(
        session, key_ids=key_ids, reason="store acknowledged", at=now, called_at=called_at
    )
    cutoffs.open_proofs(session, commands=[c for c in commands if _revokes(c)])
    return clocks


def close_without_gateway(
    session: Session, *, key_ids: list[uuid.UUID], called_at: datetime
) -> None:
    """These keys' settled commands needed no gateway call: their cut-offs are done."""
    cutoffs.acknowledge(session, key_ids=key_ids, called_at=called_at, at=utcnow())
