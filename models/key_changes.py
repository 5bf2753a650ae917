"""Carrying out a key change odock-sync decided: the one way every caller changes a key.

Which keys a change touches is the caller's decision (its `scope`); how the change reaches
the key store and the gateway is decided here, by the session's mode:
- embedded (default): odock-sync's tables are the store. The keys are marked here and the
  gateway invalidation is written to the outbox in the same transaction.
- bridged: Odock's management plane is the store. The keys are marked in odock-sync's view
  and a key command per key is written in the same transaction, with a cut-off carrying it;
  the worker sends it (and the cut-off reaper again) until the store acknowledges, and only
  then invalidates the gateway's cache (models/store_commands.py, models/actions/cutoffs.py).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, bindparam, case, exists, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.dml import ReturningUpdate, Update

from models import audit, driver_writes, outbox
from models.actions import cutoffs
from models.actor import Actor
from models.base import utcnow
from models.db import ODOCK_MODE_KEY
from models.entities import StoreCommand, VirtualApiKey
from models.enums import KeyType, StoreCommandType

TASK_INVALIDATE_KEYS = "gateway.invalidate_keys"
TASK_SEND_STORE_COMMANDS = "odock.send_store_commands"
BRIDGED = "bridged"

AUDIT_ACTIONS = {
    StoreCommandType.REVOKE: "api_key.revoked",
    StoreCommandType.RESTORE: "api_key.restored",
    StoreCommandType.REASSIGN: "api_key.reassigned",
    StoreCommandType.ROTATE_REQUEST: "api_key.rotation_requested",
}


@dataclass(frozen=True)
class KeyChange:
    """One decision about the keys that `scope` selects, in one organisation."""

    command: StoreCommandType
    organisation_id: uuid.UUID
    scope: ColumnElement[bool]
    actor: Actor
    reason: str
    # The values of a kept scope's bound parameters (key_scope.kept_revocation_scope): a
    # revocation's UPDATE of it is kept too, and runs prepared.
    scope_params: Mapping[str, Any] | None = None
    # The revocation whose decision this is: a revoke stamps its keys with it, and every
    # store command of the change names it (StoreCommand.revocation_id).
    revocation_id: uuid.UUID | None = None
    owner_user_id: uuid.UUID | None = None
    owner_team_id: uuid.UUID | None = None
    key_type: KeyType | None = None  # reassign: USER when it names a person, else TEAM
    audit_detail: dict[str, Any] = field(default_factory=dict)
    audit_before: dict[str, Any] | None = None  # the caller's view of the keys before
    # Carried by the invalidation, embedded or bridged (the time-to-kill clock of a revocation).
    invalidation_detail: dict[str, Any] = field(default_factory=dict)


def is_bridged(session: Session) -> bool:
    return session.info.get(ODOCK_MODE_KEY) == BRIDGED


def carry_out_key_change(session: Session, change: KeyChange) -> list[uuid.UUID]:
    """Change the keys in scope and send the change on its way; the ids of the keys changed."""
    key_ids = _change_view(session, change)
    if not key_ids:
        return []
    if change.command is not StoreCommandType.ROTATE_REQUEST:
        _forget_loaded(session, key_ids)
    _audit(session, change, key_ids)
    if is_bridged(session):
        commands = _issue_commands(session, change, key_ids)
        _open_cutoffs(session, change, key_ids, commands)
    elif change.command is not StoreCommandType.ROTATE_REQUEST:
        # A rotation needs the key's value, which only Odock holds: embedded, it is audited.
        _open_cutoffs(session, change, key_ids, commands=None)
        # One gateway call for the transaction's keys (a drain batch's revocations): each
        # key's own time-to-kill clock is on its cut-off, which the task's observation reads.
        # Eager (published right after commit, no second transaction): the cut-off just
        # opened is the safety net, not the message. A publish that fails hands the message
        # back to the relay at once; one lost between commit and publish (the process died)
        # leaves a cut-off due now, which the reaper re-drives within CUTOFF_REAP_INTERVAL.
        outbox.enqueue_batched(
            session,
            TASK_INVALIDATE_KEYS,
            batch=(change.reason, change.invalidation_detail.get("source")),
            lists={"key_ids": [str(key_id) for key_id in key_ids]},
            eager=True,
            reason=change.reason,
            **change.invalidation_detail,
        )
    return key_ids


def keys_with_pending_commands(session: Session, key_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Keys with a command the store has not acknowledged: a listing or push that still shows
    their old state is older than odock-sync's decision and must not overwrite it."""
    if not key_ids:
        return set()
    return set(
        session.scalars(
            select(StoreCommand.subject_id).where(
                StoreCommand.subject_id.in_(key_ids),
                StoreCommand.acknowledged_at.is_(None),
                StoreCommand.abandoned_at.is_(None),
            )
        )
    )


# What each command decides about a key: a push or listing must leave these columns alone
# while such a command is unacknowledged (it shows the store from before the decision).
DECIDED_COLUMNS = {
    StoreCommandType.REVOKE: ("revoked", "revoked_at"),
    StoreCommandType.RESTORE: ("revoked", "revoked_at"),
    StoreCommandType.REASSIGN: ("owner_user_id", "owner_team_id", "key_type"),
    StoreCommandType.ROTATE_REQUEST: (),
    StoreCommandType.BUDGET_FREEZE: (),
    StoreCommandType.BUDGET_THAW: (),
}


def keep_pending_decisions(
    session: Session, key_id: uuid.UUID, values: dict[str, Any]
) -> dict[str, Any]:
    """`values` from the store without what a command still on its way has decided."""
    pending = session.scalars(
        select(StoreCommand.command_type).where(
            StoreCommand.subject_id == key_id,
            StoreCommand.acknowledged_at.is_(None),
            StoreCommand.abandoned_at.is_(None),
        )
    ).all()
    decided = {column for command in pending for column in DECIDED_COLUMNS[command]}
    return {name: value for name, value in values.items() if name not in decided}


def keep_pending_decision_sql(
    column: str, *, key_id: Any, incoming: Any, held: Any
) -> ColumnElement[Any]:
    """keep_pending_decisions for a set-based upsert: the held value of `column` while a
    command deciding it is unacknowledged, else the incoming one."""
    deciding = [command for command, columns in DECIDED_COLUMNS.items() if column in columns]
    if not deciding:
        return incoming
    pending = exists().where(
        StoreCommand.subject_id == key_id,
        StoreCommand.acknowledged_at.is_(None),
        StoreCommand.abandoned_at.is_(None),
        StoreCommand.command_type.in_(deciding),
    )
    return case((pending, held), else_=incoming)


STORE_KEY_UNKNOWN = "the store holds no such key (deleted there)"


def latest_revoke_command(session: Session, key: VirtualApiKey) -> StoreCommand | None:
    """The newest command carrying the key's current revocation to the store (bridged)."""
    if key.revoked_at is None:
        return None
    return session.scalar(
        select(StoreCommand)
        .where(
            StoreCommand.subject_id == key.id,
            StoreCommand.command_type == StoreCommandType.REVOKE,
            StoreCommand.issued_at >= key.revoked_at,
        )
        .order_by(StoreCommand.issued_at.desc())
        .limit(1)
    )


def latest_revoke_commands(
    session: Session, key_ids: list[uuid.UUID]
) -> dict[uuid.UUID, StoreCommand]:
    """latest_revoke_command of many keys in one read (a leaver's hundreds of keys answered
    in one round), by key id; a key with none is left out."""
    if not key_ids:
        return {}
    commands = session.scalars(
        select(StoreCommand)
        .join(VirtualApiKey, VirtualApiKey.id == StoreCommand.subject_id)
        .where(
            StoreCommand.subject_id.in_(key_ids),
            StoreCommand.command_type == StoreCommandType.REVOKE,
            StoreCommand.issued_at >= VirtualApiKey.revoked_at,
        )
        .order_by(StoreCommand.issued_at)
    )
    return {command.subject_id: command for command in commands}  # the newest comes last


def store_facts(command: StoreCommand) -> dict[str, Any]:
    """What a finding about the command's key says of the store's answer, beyond the columns."""
    if command.abandoned_at is None:
        return {}
    return {"store": STORE_KEY_UNKNOWN, "store_answered_at": command.abandoned_at.isoformat()}


def store_acknowledged_at(session: Session, key: VirtualApiKey) -> datetime | None:
    """When the store acknowledged the key's revocation (embedded: our own write is the store)."""
    if key.revoked_at is None:
        return None
    if not is_bridged(session):
        return key.revoked_at
    return session.scalar(
        select(StoreCommand.acknowledged_at)
        .where(
            StoreCommand.subject_id == key.id,
            StoreCommand.command_type == StoreCommandType.REVOKE,
            StoreCommand.issued_at >= key.revoked_at,
            StoreCommand.acknowledged_at.is_not(None),
        )
        .order_by(StoreCommand.acknowledged_at)
        .limit(1)
    )


def _change_view(session: Session, change: KeyChange) -> list[uuid.UUID]:
    if change.command is StoreCommandType.ROTATE_REQUEST:
        # Locked as the other commands' UPDATE locks the keys it changes (_issue_times).
        return list(
            session.scalars(
                select(VirtualApiKey.id)
                .where(change.scope)
                .order_by(VirtualApiKey.id)
                .with_for_update(key_share=True)
            )
        )
    now = utcnow()
    if change.scope_params is not None and change.command is StoreCommandType.REVOKE:
        values = {**change.scope_params, "changed_at": now, "revocation_id": change.revocation_id}
        rows = driver_writes.run(
            session, _kept_revoke(change.scope), values, synchronize_session=False
        )
        return sorted(key_id for (key_id,) in rows)
    statement = update(VirtualApiKey).where(change.scope)
    if change.command is StoreCommandType.REVOKE:
        statement = _revoking(statement, now, change.revocation_id)
    elif change.command is StoreCommandType.RESTORE:
        statement = statement.where(VirtualApiKey.revoked.is_(True)).values(
            revoked=False, revoked_at=None, revoked_by_revocation_id=None
        )
    else:
        statement = statement.values(
            owner_user_id=change.owner_user_id, owner_team_id=change.owner_team_id
        )
        if change.key_type is not None:
            statement = statement.values(key_type=change.key_type)
    return sorted(
        session.scalars(
            statement.values(updated_at=now)
            .returning(VirtualApiKey.id)
            .execution_options(synchronize_session=False)
        ).all()
    )


@functools.lru_cache(maxsize=8)
def _kept_revoke(scope: ColumnElement[bool]) -> ReturningUpdate[uuid.UUID]:
    """The REVOKE of `_change_view` for a kept scope, built once: the time (`changed_at`)
    and the revocation (`revocation_id`) bound at each execution, as the scope's own values."""
    changed_at: BindParameter[datetime] = bindparam("changed_at")
    statement = update(VirtualApiKey).where(scope)
    revoking = _revoking(statement, changed_at, bindparam("revocation_id"))
    return revoking.values(updated_at=changed_at).returning(VirtualApiKey.id)


def _revoking(statement: Update, changed_at: Any, revocation_id: Any) -> Update:
    """What a REVOKE sets on the active keys of `statement`'s scope (values, or parameters
    bound at each execution), whichever way the statement is built."""
    return statement.where(VirtualApiKey.revoked.is_(False)).values(
        revoked=True, revoked_at=changed_at, revoked_by_revocation_id=revocation_id
    )


def _forget_loaded(session: Session, key_ids: list[uuid.UUID]) -> None:
    """The UPDATE bypassed the identity map: reload any of these keys already loaded."""
    for key_id in key_ids:
        loaded = session.identity_map.get(identity_key(VirtualApiKey, key_id))
        if loaded is not None:
            session.expire(loaded)


def _audit(session: Session, change: KeyChange, key_ids: list[uuid.UUID]) -> None:
    before, after = _audit_states(change)
    before = change.audit_before or before
    if change.revocation_id is not None:
        after["revocation_id"] = str(change.revocation_id)
    for key_id in key_ids:
        audit.record(
            session,
            actor=change.actor,
            organisation_id=change.organisation_id,
            action=AUDIT_ACTIONS[change.command],
            target_type="api_key",
            target_id=key_id,
            before=before,
            after={**after, **change.audit_detail},
        )


def _audit_states(change: KeyChange) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    if change.command is StoreCommandType.REVOKE:
        return {"revoked": False}, {"revoked": True}
    if change.command is StoreCommandType.RESTORE:
        return {"revoked": True}, {"revoked": False}
    if change.command is StoreCommandType.REASSIGN:
        owners = {
            **({"key_type": change.key_type.value} if change.key_type else {}),
            "owner_user_id": str(change.owner_user_id) if change.owner_user_id else None,
            "owner_team_id": str(change.owner_team_id) if change.owner_team_id else None,
        }
        return None, owners
    return None, {"reason": change.reason}


def _open_cutoffs(
    session: Session,
    change: KeyChange,
    key_ids: list[uuid.UUID],
    commands: dict[uuid.UUID, uuid.UUID] | None,
) -> None:
    cutoffs.open_cutoffs(
        session,
        organisation_id=change.organisation_id,
        key_ids=key_ids,
        command=change.command.value,
        reason=change.reason,
        via_store=commands is not None,
        command_ids=commands,
        clock=change.invalidation_detail,
    )


def _issue_commands(
    session: Session, change: KeyChange, key_ids: list[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """A command per key, sent after commit; the cut-off reaper sends it again until the store
    answers. Key id -> command id."""
    return _store_commands(
        session,
        organisation_id=change.organisation_id,
        subject_ids=key_ids,
        command=change.command,
        reason=change.reason,
        owners={"owner_user_id": change.owner_user_id, "owner_team_id": change.owner_team_id},
        clock=change.invalidation_detail,
        revocation_id=change.revocation_id,
    )


def send_budget_change(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    budget_ids: list[uuid.UUID],
    command: StoreCommandType,
    reason: str,
    revocation_id: uuid.UUID,
) -> None:
    """Carry a freeze or thaw of these budgets (already made in odock-sync's view by this
    revocation or its undoing) to the store. Bridged: a command per budget, on a cut-off like
    a key's (no gateway call after); embedded: odock-sync's own budget rows are the store,
    nothing to send."""
    if not budget_ids or not is_bridged(session):
        return
    commands = _store_commands(
        session,
        organisation_id=organisation_id,
        subject_ids=budget_ids,
        command=command,
        reason=reason,
        owners={},
        clock={},
        revocation_id=revocation_id,
    )
    cutoffs.open_cutoffs(
        session,
        organisation_id=organisation_id,
        key_ids=budget_ids,
        command=command.value,
        reason=reason,
        via_store=True,
        command_ids=commands,
    )


ISSUE_BATCH = 5_000


def _issue_times(
    session: Session, subject_ids: list[uuid.UUID], now: datetime
) -> dict[uuid.UUID, datetime]:
    """When each subject's new command is issued: now, or just after the subject's latest
    command when that is later (a clock stepped back, or a host whose clock runs ahead issued
    it). A key's commands are sent in the order of issued_at, so it must be the order in
    which they were decided, whatever the clocks of the processes that decided them.

    Read under each subject's row lock, taken by the caller's change of it (a key's or a
    budget's UPDATE; FOR NO KEY UPDATE for a rotation request, which changes nothing): of
    two transactions issuing commands for one key at once, the later waits for the earlier
    to end and reads its command, rather than both reading none and each going by its own
    clock."""
    latest: dict[uuid.UUID, datetime] = {}
    for start in range(0, len(subject_ids), ISSUE_BATCH):
        batch = subject_ids[start : start + ISSUE_BATCH]
        rows = session.execute(
            select(StoreCommand.subject_id, func.max(StoreCommand.issued_at))
            .where(StoreCommand.subject_id.in_(batch))
            .group_by(StoreCommand.subject_id)
        )
        latest.update((subject_id, issued_at) for subject_id, issued_at in rows)
    step = timedelta(microseconds=1)
    return {
        subject_id: max(now, latest[subject_id] + step) if subject_id in latest else now
        for subject_id in subject_ids
    }


def _store_commands(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    subject_ids: list[uuid.UUID],
    command: StoreCommandType,
    reason: str,
    owners: dict[str, uuid.UUID | None],
    clock: dict[str, Any],
    revocation_id: uuid.UUID | None,
) -> dict[uuid.UUID, uuid.UUID]:
    issued = _issue_times(session, subject_ids, utcnow())
    commands = [
        StoreCommand(
            organisation_id=organisation_id,
            subject_id=subject_id,
            command_type=command,
            reason=reason[:500],
            issued_at=issued[subject_id],
            revocation_id=revocation_id,
            **owners,
        )
        for subject_id in subject_ids
    ]
    session.add_all(commands)
    session.flush()
    outbox.enqueue(
        session,
        TASK_SEND_STORE_COMMANDS,
        command_ids=[str(c.id) for c in commands],
        **clock,  # the time-to-kill clock (kept on the cut-offs too)
    )
    return {c.subject_id: c.id for c in commands}
