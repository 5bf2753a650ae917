"""The mass-change gate of push sources, like Entra ID's accidental-deletions prevention.

SCIM and IdP events may deactivate, delete or demote people one request at a time, and the
end-date schedule revokes everyone whose date has come. Once more of those arrive from one
source within the window than the organisation allows (a count, a percentage of its active
people, or both), the gate trips: that change and every further destructive change from the
source is held, the person keeps access, and the organisation's admins are alerted; an admin
approves or discards the held batch (mass_change_holds). The lifecycle
(`set_active(..., gate=...)`) and the SCIM group-role mapping call `admit`; a source that
knows its batch in advance (the schedule) announces it with `expect`; the decision lives here
and nowhere else.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from models import audit, unique_rows
from models.actor import Actor
from models.base import new_id, utcnow
from models.db import PREPARED, conflict_insert
from models.entities import (
    MassChange,
    MassChangeGate,
    MassChangeSettings,
    Organisation,
    ScimUser,
    User,
)
from models.entities.mass_change import (
    DEFAULT_THRESHOLD_COUNT,
    DEFAULT_THRESHOLD_PERCENT,
    DEFAULT_WINDOW_MINUTES,
)
from models.enums import ChangeKind, ChangeStatus, Role, Source, UserStatus
from models.errors import InvalidInput
from models.notifications import notify

log = structlog.get_logger(__name__)

GATED_SOURCES = frozenset({Source.SCIM, Source.OKTA, Source.EVENTS, Source.SCHEDULE})
STATUS_KINDS = frozenset({ChangeKind.DEACTIVATE, ChangeKind.DELETE})
EVENT_HELD = "mass_change.held"
_GATES_LOCKED = "mass_change.gates_locked"  # session.info: gate rows this transaction locked
_RESERVED = "mass_change.reserved"  # session.info: the changes counted ahead for a batch
_THRESHOLDS_READ = "mass_change.thresholds"  # session.info: thresholds this transaction read
MAX_WINDOW_MINUTES = 7 * 24 * 60
MAX_THRESHOLD_COUNT = 1_000_000_000  # fits the column on every database


@dataclass(frozen=True)
class GateRequest:
    """A destructive change a push source asks for, and what applying it later needs."""

    kind: ChangeKind
    payload: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class Thresholds:
    enabled: bool = True
    threshold_count: int = DEFAULT_THRESHOLD_COUNT
    threshold_percent: int = DEFAULT_THRESHOLD_PERCENT
    window_minutes: int = DEFAULT_WINDOW_MINUTES

    def exceeded(self, changes: int, active_people: int) -> str:
        """Why `changes` destructive changes in the window are too many, or ""."""
        if not self.enabled:
            return ""
        if self.threshold_count and changes > self.threshold_count:
            return (
                f"{changes} destructive changes within {self.window_minutes} minutes, "
                f"more than the threshold of {self.threshold_count}"
            )
        if self.threshold_percent and changes * 100 > self.threshold_percent * active_people:
            return (
                f"{changes} destructive changes within {self.window_minutes} minutes, more "
                f"than {self.threshold_percent}% of the {active_people} active people"
            )
        return ""

    def view(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "threshold_count": self.threshold_count,
            "threshold_percent": self.threshold_percent,
            "window_minutes": self.window_minutes,
        }


def thresholds(session: Session, organisation_id: uuid.UUID) -> Thresholds:
    """The organisation's thresholds, read once per transaction: a change of many people
    (a large group's role drops) asks for each, and an organisation without settings of its
    own has no row for the identity map to keep."""
    read = session.info.setdefault(_THRESHOLDS_READ, {})
    transaction = session.get_transaction()
    if (
        transaction is not None
        and organisation_id in read
        and read[organisation_id][0] is transaction
    ):
        return read[organisation_id][1]
    stored = session.get(MassChangeSettings, organisation_id)
    limits = (
        Thresholds(
            stored.enabled, stored.threshold_count, stored.threshold_percent, stored.window_minutes
        )
        if stored is not None
        else Thresholds()
    )
    read[organisation_id] = (session.get_transaction(), limits)  # begun by the read
    return limits


def read_thresholds(session: Session, organisation_id: uuid.UUID, limits: Thresholds) -> None:
    """The caller read the organisation's thresholds with its own rows, in the session's
    current transaction: `thresholds` answers these in it (a SCIM write reads them with the
    user it locks)."""
    read = session.info.setdefault(_THRESHOLDS_READ, {})
    read[organisation_id] = (session.get_transaction(), limits)


def set_thresholds(
    session: Session,
    *,
    organisation: Organisation,
    actor: Actor,
    enabled: bool | None = None,
    threshold_count: int | None = None,
    threshold_percent: int | None = None,
    window_minutes: int | None = None,
) -> Thresholds:
    """Change some of the organisation's thresholds; all are checked before any is stored.
    Of two admins at once, the later changes what the earlier stored (the row is locked,
    created by the first of them if need be), so neither loses the other's change."""

    def changed(before: Thresholds) -> Thresholds:
        after = Thresholds(
            before.enabled if enabled is None else enabled,
            before.threshold_count if threshold_count is None else threshold_count,
            before.threshold_percent if threshold_percent is None else threshold_percent,
            before.window_minutes if window_minutes is None else window_minutes,
        )
        _validate(after)
        return after

    read = thresholds(session, organisation.id)
    if changed(read) == read:
        return read
    session.info.get(_THRESHOLDS_READ, {}).pop(organisation.id, None)
    stored, _ = unique_rows.insert_or_find(
        session, MassChangeSettings, {"organisation_id": organisation.id}, lock=True
    )
    before = Thresholds(
        stored.enabled, stored.threshold_count, stored.threshold_percent, stored.window_minutes
    )
    after = changed(before)
    if after == before:
        return after
    stored.enabled, stored.threshold_count = after.enabled, after.threshold_count
    stored.threshold_percent, stored.window_minutes = after.threshold_percent, after.window_minutes
    audit.record(
        session,
        actor=actor,
        organisation_id=organisation.id,
        action="mass_change.settings_changed",
        target_type="organisation",
        target_id=organisation.id,
        before=before.view(),
        after=after.view(),
    )
    return after


def _validate(wanted: Thresholds) -> None:
    if not 0 <= wanted.threshold_count <= MAX_THRESHOLD_COUNT:
        raise InvalidInput(
            f"threshold_count must be 0 (no count limit) or more, at most {MAX_THRESHOLD_COUNT}",
            field="threshold_count",
        )
    if not 0 <= wanted.threshold_percent <= 100:
        raise InvalidInput(
            "threshold_percent must be between 0 (no percentage limit) and 100",
            field="threshold_percent",
        )
    if not 1 <= wanted.window_minutes <= MAX_WINDOW_MINUTES:
        raise InvalidInput(
            f"window_minutes must be between 1 and {MAX_WINDOW_MINUTES}", field="window_minutes"
        )
    if wanted.enabled and not wanted.threshold_count and not wanted.threshold_percent:
        raise InvalidInput(
            "an enabled gate needs threshold_count or threshold_percent; "
            "set enabled to false to turn it off",
            field="threshold_count",
        )


def admit(session: Session, *, user: User, request: GateRequest, actor: Actor) -> bool:
    """Whether this destructive change may apply now (True) or is held (False).

    Called only for a change that would change something. The organisation's gate row for
    the source is locked until commit, so parallel requests count as if one after another.
    """
    if actor.source not in GATED_SOURCES:
        return True
    if _take_reserved(session, user, request, actor):
        return True  # counted ahead with the rest of its batch (reserve)
    limits = thresholds(session, user.organisation_id)
    if not limits.enabled:
        return True  # turned off: nothing counted, nothing locked
    if _admitted_at_once(session, user, request, actor, limits):
        return True  # an open gate holds nothing: no held change of the person to look for
    gate = _locked_gate(session, user.organisation_id, actor.source)
    if pending_hold(session, user_id=user.id, source=actor.source, kinds={request.kind}):
        return False  # already held: the source repeated itself
    if gate.batch_id is None:
        reason = _too_many(session, gate, limits, user.organisation_id)
        if not reason:
            _count(session, user, request, actor)
            return True
        _trip(session, gate, reason, actor)
    _hold(session, gate, user, request, actor)
    return False


def expect(session: Session, *, organisation_id: uuid.UUID, changes: int, actor: Actor) -> bool:
    """A source about to make `changes` destructive changes it knows of in advance (end dates
    due together) trips the gate first when they would exceed the thresholds together, so the
    whole batch is held rather than cut off after the first few; True when the gate holds."""
    if actor.source not in GATED_SOURCES or changes < 1:
        return False
    limits = thresholds(session, organisation_id)
    if not limits.enabled:
        return False
    gate = _locked_gate(session, organisation_id, actor.source)
    if gate.batch_id is None:
        reason = _too_many(session, gate, limits, organisation_id, adding=changes)
        if not reason:
            return False
        _trip(session, gate, reason, actor)
    return True


def _admitted_at_once(
    session: Session, user: User, request: GateRequest, actor: Actor, limits: Thresholds
) -> bool:
    """Let the change through in a short transaction of its own, when the gate is open and
    one more change stays within the thresholds (PostgreSQL).

    The gate row is then locked for milliseconds instead of until the change's own commit,
    so a source's parallel changes do not queue behind one another's whole work: the change
    is written before the lock is taken, and the lock is held for one count and the commit.
    Counted changes are committed at once: one whose own transaction later fails still counts
    for the window, which errs towards holding. Anything else (the thresholds reached, this
    transaction holding the gate already, the person not committed yet, a wait of more than a
    moment) is rolled back and left to the locked path of `admit`, which decides it. A gate
    seen tripped writes nothing and takes no lock here: the count is written only while the
    gate is open, so the changes a tripped gate holds (and an IdP's retries of them) go
    straight to the locked path.
    """
    bind = session.get_bind()
    if bind.dialect.name != "postgresql" or _holds_gate(session, user.organisation_id, actor):
        return False
    engine = bind if isinstance(bind, Engine) else bind.engine
    try:
        with Session(engine) as own:
            own.execute(text("SET LOCAL lock_timeout = '1s'"))
            change_id = _count_while_open(own, user, request, actor)
            if change_id is None:
                return False
            gate = _locked_gate(own, user.organisation_id, actor.source)
            if gate.batch_id is not None:
                return False
            if _too_many(own, gate, limits, user.organisation_id, besides=change_id):
                return False
            own.commit()
            return True
    except SQLAlchemyError as exc:
        log.info("mass_change.admitted_in_transaction", reason=type(exc).__name__)
        return False


@dataclass(frozen=True)
class Wanted:
    """A destructive change a batch is about to ask for (see reserve)."""

    user_id: uuid.UUID
    request: GateRequest


@dataclass
class _Reservation:
    """The changes counted ahead for one batch: their rows, and those not yet taken."""

    rows: dict[tuple[uuid.UUID, ChangeKind], list[uuid.UUID]] = field(default_factory=dict)
    left: dict[tuple[uuid.UUID, ChangeKind], list[uuid.UUID]] = field(default_factory=dict)

    def restart(self) -> None:
        self.left = {change: list(ids) for change, ids in self.rows.items()}

    def unused(self) -> list[uuid.UUID]:
        return [row_id for ids in self.left.values() for row_id in ids]

    def every_row(self) -> list[uuid.UUID]:
        return [row_id for ids in self.rows.values() for row_id in ids]


@contextmanager
def reserved(
    session: Session, *, organisation_id: uuid.UUID, actor: Actor, wanted: list[Wanted]
) -> Iterator[Callable[[], None]]:
    """Count a batch's destructive changes through the gate at once, in one short transaction
    of its own, instead of one transaction per change (PostgreSQL).

    As many of `wanted`, in order, as the thresholds let through now are counted and committed;
    `admit` then lets those through without a query. The rest (the gate tripped or the
    thresholds reached, or not on PostgreSQL) go the usual way, one by one, and are held as
    before. Yields `restart`, for a caller that applies the batch again after a rollback.
    Counted changes the batch did not make (an event found stale, a person already revoked)
    are taken back in the batch's transaction; should the batch fail, in one of their own.
    """
    reservation = _reserve(session, organisation_id, actor, wanted)
    if reservation is None:
        yield lambda: None
        return
    key = (organisation_id, actor.source)
    session.info.setdefault(_RESERVED, {})[key] = reservation
    try:
        yield reservation.restart
    except BaseException:
        session.info[_RESERVED].pop(key, None)
        _take_back_apart(session, reservation.every_row())
        raise
    session.info[_RESERVED].pop(key, None)
    _take_back(session, reservation.unused())


def _reserve(
    session: Session, organisation_id: uuid.UUID, actor: Actor, wanted: list[Wanted]
) -> _Reservation | None:
    bind, source = session.get_bind(), actor.source
    if not wanted or source not in GATED_SOURCES or bind.dialect.name != "postgresql":
        return None
    limits = thresholds(session, organisation_id)
    if not limits.enabled:
        return None
    wanted = _not_held(session, source, wanted)
    engine = bind if isinstance(bind, Engine) else bind.engine
    try:
        with Session(engine) as own:
            own.execute(text("SET LOCAL lock_timeout = '1s'"))
            gate = _locked_gate(own, organisation_id, source)
            if gate.batch_id is not None:
                return None
            window = _window(own, gate, limits)
            people = window.active_people + window.changes
            admitted = _within(limits, window.changes, people, len(wanted))
            rows = [_counted_row(organisation_id, item, actor) for item in wanted[:admitted]]
            own.add_all(rows)
            row_ids = [row.id for row in rows]
            own.commit()
    except SQLAlchemyError as exc:
        log.info("mass_change.reservation_failed", reason=type(exc).__name__)
        return None
    reservation = _Reservation()
    for item, row_id in zip(wanted, row_ids, strict=False):
        reservation.rows.setdefault((item.user_id, item.request.kind), []).append(row_id)
    reservation.restart()
    return reservation


def _within(limits: Thresholds, counted: int, people: int, wanted: int) -> int:
    """How many more changes the thresholds let through, at most `wanted`."""
    admitted = 0
    while admitted < wanted and not limits.exceeded(counted + admitted + 1, people):
        admitted += 1
    return admitted


def _not_held(session: Session, source: Source, wanted: list[Wanted]) -> list[Wanted]:
    """The wanted changes of people with nothing held from the source (held: `admit` holds)."""
    held = set(
        session.execute(
            select(MassChange.user_id, MassChange.kind).where(
                MassChange.user_id.in_({item.user_id for item in wanted}),
                MassChange.status == ChangeStatus.HELD,
                MassChange.source == source,
            )
        )
    )
    return [item for item in wanted if (item.user_id, item.request.kind) not in held]


def _counted_row(organisation_id: uuid.UUID, item: Wanted, actor: Actor) -> MassChange:
    return MassChange(
        id=new_id(),
        organisation_id=organisation_id,
        source=actor.source,
        user_id=item.user_id,
        kind=item.request.kind,
        status=ChangeStatus.APPLIED,
        payload=dict(item.request.payload),
        actor=str(actor)[:255],
        reason=item.request.reason,
    )


def _take_reserved(session: Session, user: User, request: GateRequest, actor: Actor) -> bool:
    reservations = session.info.get(_RESERVED, {})
    reservation: _Reservation | None = reservations.get((user.organisation_id, actor.source))
    ids = reservation.left.get((user.id, request.kind)) if reservation else None
    if not ids:
        return False
    ids.pop()
    return True


def _take_back(session: Session, row_ids: list[uuid.UUID]) -> None:
    if row_ids:
        session.execute(
            delete(MassChange)
            .where(MassChange.id.in_(row_ids), MassChange.status == ChangeStatus.APPLIED)
            .execution_options(synchronize_session=False)
        )


def _take_back_apart(session: Session, row_ids: list[uuid.UUID]) -> None:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    try:
        with Session(engine) as own:
            _take_back(own, row_ids)
            own.commit()
    except SQLAlchemyError as exc:  # they count for the window: errs towards holding
        log.info("mass_change.reservation_kept", reason=type(exc).__name__)


def _holds_gate(session: Session, organisation_id: uuid.UUID, actor: Actor) -> bool:
    held = session.info.get(_GATES_LOCKED, {}).get((organisation_id, actor.source))
    return held is not None and held[0] is session.get_transaction()


def pending_hold(
    session: Session, *, user_id: uuid.UUID, source: Source, kinds: Collection[ChangeKind]
) -> MassChange | None:
    return session.scalar(
        select(MassChange)
        .where(
            MassChange.user_id == user_id,
            MassChange.status == ChangeStatus.HELD,
            MassChange.source == source,
            MassChange.kind.in_(kinds),
        )
        .limit(1)
    )


def withdraw(
    session: Session,
    *,
    user: User,
    kinds: Collection[ChangeKind],
    actor: Actor,
    source: Source | None = None,
) -> int:
    """The source took these changes back (active=true again, the role regranted, the end
    date moved away): its held changes of the person are superseded and will not apply.
    `source`: whose held changes, when not the actor's own. Returns how many."""
    source = source or actor.source
    if source not in GATED_SOURCES:
        return 0
    values = {"user_id": user.id, "source": source, "kinds": sorted(kinds)}
    # Without flushing the caller's other pending writes (a PATCH's profile edit and its
    # audit event) when none is a mass change, which alone this read could see: the flush
    # at the end writes them with the rest, two round trips fewer.
    reading = session.no_autoflush if _mass_changes_flushed(session) else nullcontext()
    with reading:
        held = list(session.scalars(_held_changes(), values, execution_options={PREPARED: True}))
    for change in held:
        close(session, held=change, status=ChangeStatus.SUPERSEDED, actor=actor)
    if held:
        settle(session, organisation_id=user.organisation_id, source=source, actor=actor)
    return len(held)


def holding(
    session: Session,
    user_ids: Collection[uuid.UUID],
    *,
    kinds: Collection[ChangeKind],
    source: Source,
) -> set[uuid.UUID]:
    """Which of these people have a change of these kinds from `source` held (that withdraw
    would supersede), in one read: a batch asks before withdrawing person by person."""
    if not user_ids:
        return set()
    return set(
        session.scalars(
            select(MassChange.user_id).where(
                MassChange.user_id.in_(list(user_ids)),
                MassChange.status == ChangeStatus.HELD,
                MassChange.source == source,
                MassChange.kind.in_(sorted(kinds)),
            )
        )
    )


def _mass_changes_flushed(session: Session) -> bool:
    """Whether the database holds every mass change as this session has it."""
    unflushed = (*session.new, *session.dirty, *session.deleted)
    return not any(isinstance(entity, MassChange) for entity in unflushed)


@functools.cache
def _held_changes() -> Select[MassChange]:
    """withdraw's read, built once per process (the person, the source and the kinds bound
    at each execution): every SCIM PATCH that leaves a person active asks it, and building it
    and its cache key cost more than running it."""
    return select(MassChange).where(
        MassChange.user_id == bindparam("user_id"),
        MassChange.status == ChangeStatus.HELD,
        MassChange.source == bindparam("source"),
        MassChange.kind.in_(bindparam("kinds", expanding=True)),
    )


def supersede_by_revocation(session: Session, *, user: User, actor: Actor) -> list[Source]:
    """The person was revoked another way (an admin, another source, an approval): every
    revocation the gate still holds for them has happened, so it closes as superseded (audited)
    instead of waiting for an admin's decision. Returns the source of each (the revocation
    keeps standing for them, see lifecycle)."""
    held = list(
        session.scalars(
            select(MassChange)
            .where(
                MassChange.user_id == user.id,
                MassChange.status == ChangeStatus.HELD,
                MassChange.kind.in_(STATUS_KINDS),
            )
            .order_by(MassChange.created_at, MassChange.id)
        )
    )
    note = f"the person was revoked by {actor.source.value}"
    for change in held:
        close(session, held=change, status=ChangeStatus.SUPERSEDED, actor=actor, note=note)
    for source in sorted({change.source for change in held}):
        settle(session, organisation_id=user.organisation_id, source=source, actor=actor)
    return [change.source for change in held]


def close(
    session: Session,
    *,
    held: MassChange,
    status: ChangeStatus,
    actor: Actor,
    outcome: str = "",
    note: str = "",
) -> None:
    """Close one held change (approved, discarded or superseded), audited."""
    held.status = status
    held.decided_at = utcnow()
    held.decided_by = str(actor)[:255]
    if held.source is Source.SCIM and held.kind is ChangeKind.DEACTIVATE:
        _show_real_status(session, held.user_id)
    audit.record(
        session,
        actor=actor,
        organisation_id=held.organisation_id,
        action=f"mass_change.{status.value}",
        target_type="user",
        target_id=held.user_id,
        before={"status": ChangeStatus.HELD.value, "hold_id": str(held.id)},
        after={
            "status": status.value,
            "hold_id": str(held.id),
            "batch_id": str(held.batch_id),
            "kind": held.kind.value,
            "source": held.source.value,
            **({"outcome": outcome} if outcome else {}),
            **({"note": note} if note else {}),
        },
    )


def _show_real_status(session: Session, user_id: uuid.UUID) -> None:
    """SCIM showed the person active=false while it held their deactivation; closed
    (approved, discarded, or overtaken by another revocation), it shows their real status
    again, so an admin's later reactivation shows as active."""
    scim_user = session.scalar(select(ScimUser).where(ScimUser.user_id == user_id))
    if scim_user is not None:
        scim_user.held_inactive = False


def settle(session: Session, *, organisation_id: uuid.UUID, source: Source, actor: Actor) -> None:
    """Once its batch has nothing held any more, the gate opens again and counts anew.

    Called after closing changes: the gate is locked last, as `admit` locks it after the
    person's row, so the two never wait on each other in opposite orders.
    """
    session.flush()
    gate = _locked_gate(session, organisation_id, source)
    if gate.batch_id is not None and not _batch_has_held(session, gate.batch_id):
        _reopen(session, gate, actor)


def _locked_gate(session: Session, organisation_id: uuid.UUID, source: Source) -> MassChangeGate:
    """The gate row, created on first use, locked until commit, in one statement: an upsert
    that updates (unlike DO NOTHING) locks the row it finds and returns it as it is once any
    other holder has committed (PostgreSQL; SQLite's one writer at a time is the lock there)."""
    locked = session.info.setdefault(_GATES_LOCKED, {})
    transaction = session.get_transaction()
    held = locked.get((organisation_id, source))
    if (
        held is not None
        and transaction is not None
        and held[0] is transaction
        and held[1] in session
    ):
        return held[1]  # locked by this transaction already: nobody else has changed it
    insert = conflict_insert(session.get_bind().dialect.name)
    upsert = (
        insert(MassChangeGate)
        .values(organisation_id=organisation_id, source=source)
        .on_conflict_do_update(
            index_elements=[MassChangeGate.organisation_id, MassChangeGate.source],
            set_={"batch_id": MassChangeGate.batch_id},  # unchanged
        )
        .returning(MassChangeGate)
    )
    gate = session.scalars(upsert, execution_options={"populate_existing": True}).one()
    locked[organisation_id, source] = (session.get_transaction(), gate)
    return gate


@dataclass(frozen=True)
class _Window:
    changes: int  # destructive changes from the source within the window
    active_people: int  # the organisation's, counted no further than any decision needs
    oldest_kept: datetime | None  # the oldest counted change still stored, in or before it


def _window(
    session: Session, gate: MassChangeGate, limits: Thresholds, besides: uuid.UUID | None = None
) -> _Window:
    """What the thresholds are checked against, read in one statement. `besides`: a change
    written already, not counted (it is the one being decided). Counted changes that have
    left the window are deleted once the oldest is two windows old, not on every call: the
    count leaves them out either way."""
    window = timedelta(minutes=limits.window_minutes)
    since = utcnow() - window
    if gate.counted_since is not None and gate.counted_since > since:
        since = gate.counted_since
    of_gate = (
        MassChange.organisation_id == gate.organisation_id,
        MassChange.source == gate.source,
    )
    changes = (
        select(func.count()).select_from(MassChange).where(*of_gate, MassChange.created_at >= since)
    )
    if besides is not None:
        changes = changes.where(MassChange.id != besides)
    oldest = select(func.min(MassChange.created_at)).where(
        *of_gate, MassChange.status == ChangeStatus.APPLIED
    )
    read = session.execute(
        select(
            changes.scalar_subquery(),
            _active_people(gate.organisation_id, limits),
            oldest.scalar_subquery(),
        )
    ).one()
    found = _Window(int(read[0] or 0), int(read[1] or 0), read[2])
    if found.oldest_kept is not None and found.oldest_kept < since - window:
        session.execute(
            delete(MassChange)
            .where(
                *of_gate,
                MassChange.status == ChangeStatus.APPLIED,
                MassChange.created_at < since,
            )
            .execution_options(synchronize_session=False)
        )
    return found


def _too_many(
    session: Session,
    gate: MassChangeGate,
    limits: Thresholds,
    organisation_id: uuid.UUID,
    adding: int = 1,
    besides: uuid.UUID | None = None,
) -> str:
    """Why `adding` more changes would be too many, or "". The percentage's base is the people
    active when the window began: those it revoked count too."""
    window = _window(session, gate, limits, besides)
    people = window.active_people + window.changes if limits.threshold_percent else 0
    return limits.exceeded(window.changes + adding, people)


def _active_people(organisation_id: uuid.UUID, limits: Thresholds) -> ColumnElement[int]:
    """The count of the organisation's active people, as far as the percentage needs it.

    Past ceil(count threshold / percentage) people, the percentage can only be exceeded
    by more changes than the count threshold allows, which that threshold refuses first:
    so the count stops there, and is exact whenever the percentage is what trips the gate.
    """
    if not limits.threshold_percent:
        return literal(0)
    active = select(User.id).where(
        User.organisation_id == organisation_id, User.status == UserStatus.ACTIVE
    )
    if limits.threshold_count:
        active = active.limit(-(-limits.threshold_count * 100 // limits.threshold_percent))
    return select(func.count()).select_from(active.subquery()).scalar_subquery()


def _count(session: Session, user: User, request: GateRequest, actor: Actor) -> MassChange:
    change = MassChange(
        organisation_id=user.organisation_id,
        source=actor.source,
        user_id=user.id,
        kind=request.kind,
        status=ChangeStatus.APPLIED,
        payload=dict(request.payload),
        actor=str(actor)[:255],
        reason=request.reason,
    )
    session.add(change)
    return change


def _count_while_open(
    session: Session, user: User, request: GateRequest, actor: Actor
) -> uuid.UUID | None:
    """Write the change as counted, in one statement, unless the source's gate is tripped
    (read without a lock: a trip after the read is seen under the lock that follows).
    Its id, or None when the gate holds and nothing was written."""
    row = _counted_row(user.organisation_id, Wanted(user.id, request), actor)
    columns = MassChange.__table__.c
    values = {
        "id": row.id,
        "organisation_id": row.organisation_id,
        "source": row.source,
        "user_id": row.user_id,
        "kind": row.kind,
        "status": row.status,
        "payload": row.payload,
        "actor": row.actor,
        "reason": row.reason,
        "created_at": utcnow(),
    }
    tripped = select(MassChangeGate.organisation_id).where(
        MassChangeGate.organisation_id == user.organisation_id,
        MassChangeGate.source == actor.source,
        MassChangeGate.batch_id.is_not(None),
    )
    written = session.scalar(
        insert(MassChange)
        .from_select(
            list(values),
            select(*(literal(v, type_=columns[k].type) for k, v in values.items())).where(
                ~tripped.exists()
            ),
        )
        .returning(MassChange.id)
    )
    return written


def _trip(session: Session, gate: MassChangeGate, reason: str, actor: Actor) -> None:
    gate.batch_id = new_id()
    gate.tripped_at = utcnow()
    audit.record(
        session,
        actor=actor,
        organisation_id=gate.organisation_id,
        action="mass_change.gate_tripped",
        target_type="organisation",
        target_id=gate.organisation_id,
        after={"source": gate.source.value, "batch_id": str(gate.batch_id), "reason": reason},
    )
    notify(
        session,
        organisation_id=gate.organisation_id,
        event=EVENT_HELD,
        payload={
            "source": gate.source.value,
            "batch_id": str(gate.batch_id),
            "reason": reason,
            "message": f"Destructive changes from {gate.source.value} are held until an "
            "admin approves or discards them (odock-sync holds list).",
        },
        recipient_user_ids=_admins(session, gate.organisation_id),
    )


def _admins(session: Session, organisation_id: uuid.UUID) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(User.id).where(
                User.organisation_id == organisation_id,
                User.role == Role.ORG_ADMIN,
                User.status == UserStatus.ACTIVE,
            )
        )
    )


def _hold(
    session: Session, gate: MassChangeGate, user: User, request: GateRequest, actor: Actor
) -> MassChange:
    held = _count(session, user, request, actor)
    held.status = ChangeStatus.HELD
    held.batch_id = gate.batch_id
    session.flush()
    audit.record(
        session,
        actor=actor,
        organisation_id=user.organisation_id,
        action="mass_change.held",
        target_type="user",
        target_id=user.id,
        after={
            "hold_id": str(held.id),
            "batch_id": str(gate.batch_id),
            "kind": request.kind.value,
            "source": actor.source.value,
            "reason": request.reason,
        },
    )
    return held


def _batch_has_held(session: Session, batch_id: uuid.UUID | None) -> bool:
    return (
        session.scalar(
            select(MassChange.id)
            .where(MassChange.batch_id == batch_id, MassChange.status == ChangeStatus.HELD)
            .limit(1)
        )
        is not None
    )


def _reopen(session: Session, gate: MassChangeGate, actor: Actor) -> None:
    batch_id = gate.batch_id
    gate.batch_id = None
    gate.tripped_at = None
    gate.counted_since = utcnow()
    audit.record(
        session,
        actor=actor,
        organisation_id=gate.organisation_id,
        action="mass_change.gate_reopened",
        target_type="organisation",
        target_id=gate.organisation_id,
        after={"source": gate.source.value, "batch_id": str(batch_id)},
    )
