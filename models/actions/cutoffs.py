"""Cut-offs with a deadline: every key invalidation is tracked until the gateway acknowledges it.

A cut-off is opened in the transaction that changes the key (models/key_changes.py). It is
done when the gateway acknowledged forgetting the key; bridged, it carries a store command
first (`command_id`) and is done only once the store settled that command and the gateway was
called after (a budget's command needs no gateway). Until then:
- the store and the gateway are called by one caller at a time per key (a lease,
  `claim_due`), with backoff between attempts; the fast path after commit and the reaper both
  go through `claim_due`, so overlapping re-sends never start a second retry chain;
- once it is older than the deadline, an urgent alarm goes to the organisation's admins and
  hooks, once per incident (`raise_alarms`); the incident clears, audited and announced, when
  its last overdue cut-off is acknowledged (`acknowledge`).

Bridged, a revocation ends with a proof (`PROOF`): the gateway asked whether it would still
accept the key (models/actions/key_proofs.py). The proof is a cut-off of its own, opened when
the gateway acknowledged the invalidation and done when the gateway answered for the key, with
the same lease, backoff, reaper and deadline alarm; the functions below take `proof=True` for
it, and an invalidation's caller never claims, fails or acknowledges a proof (nor the reverse).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, exists, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from models import audit, retention
from models.actor import Actor
from models.backoff import backoff
from models.base import UTCDateTime, utcnow
from models.entities import CutoffIncident, KeyCutoff, StoreCommand, User, VirtualApiKey
from models.entities.cutoff import PROOF_COMMAND
from models.enums import Role, StoreCommandType, UserStatus
from models.notifications import notify

EVENT_DEADLINE_MISSED = "cutoff.deadline_missed"
EVENT_RECOVERED = "cutoff.recovered"
GATEWAY_ACTOR = Actor.system("gateway")
PURGE_ACTOR = Actor.schedule("cut-off purge")
MAX_KEYS_IN_PAYLOAD = 100
CLAIM_BATCH = 500
PROOF = PROOF_COMMAND
# The store commands after which the gateway must forget the key (a rotation request changes
# nothing the gateway caches until Odock rotates the key itself; a budget is no key).
GATEWAY_COMMANDS = (StoreCommandType.REVOKE, StoreCommandType.RESTORE, StoreCommandType.REASSIGN)


@dataclass(frozen=True)
class Clock:
    """When the revocation behind a cut-off arrived (epoch seconds), and from which source."""

    source: str
    arrived_at: float


def _stage(proof: bool) -> ColumnElement[bool]:
    """The proofs, or the invalidations (and store commands): never mixed by one caller."""
    return KeyCutoff.command == PROOF if proof else KeyCutoff.command != PROOF


def open_cutoffs(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    key_ids: list[uuid.UUID],
    command: str,
    reason: str,
    via_store: bool,
    command_ids: dict[uuid.UUID, uuid.UUID] | None = None,
    clock: dict[str, Any] | None = None,
) -> None:
    """Start the clock on these keys' invalidation (in the transaction that changed them);
    bridged, `command_ids` names each key's store command."""
    now, clock = utcnow(), clock or {}
    session.add_all(
        KeyCutoff(
            organisation_id=organisation_id,
            key_id=key_id,
            command=command,
            reason=reason[:100],
            via_store=via_store,
            command_id=(command_ids or {}).get(key_id),
            source=clock.get("source"),
            arrived_at=clock.get("arrived_at"),
            requested_at=now,
            next_attempt_at=now,
        )
        for key_id in key_ids
    )


def open_reinvalidation(
    session: Session, *, organisation_id: uuid.UUID, key_id: uuid.UUID, at: datetime
) -> None:
    """A second gateway invalidation of a key, due at `at` (after a late store acknowledgement:
    a gateway may have re-read the key while the store was still applying the command)."""
    session.add(
        KeyCutoff(
            organisation_id=organisation_id,
            key_id=key_id,
            command="key.reinvalidate",
            reason="late store acknowledgement",
            via_store=False,
            requested_at=at,
            next_attempt_at=at,
        )
    )


def open_proofs(session: Session, *, commands: list[StoreCommand]) -> None:
    """Start the clock on proving these revocations (their gateway invalidation is done)."""
    now = utcnow()
    session.add_all(
        KeyCutoff(
            organisation_id=command.organisation_id,
            key_id=command.subject_id,
            command=PROOF,
            reason="proof of revocation",
            via_store=False,
            command_id=command.id,
            requested_at=now,
            next_attempt_at=now,
        )
        for command in commands
    )


def claim_due(
    session: Session,
    *,
    lease: timedelta,
    key_ids: list[uuid.UUID] | None = None,
    now: datetime | None = None,
    via_store: bool = False,
    proof: bool = False,
    batch: int = CLAIM_BATCH,
) -> list[uuid.UUID]:
    """Keys whose call (gateway; `via_store`: store, then gateway; `proof`: the gateway's
    status of a revoked key) is due and not in flight, now leased to the caller (who calls)."""
    now = now or utcnow()
    free = (KeyCutoff.leased_until.is_(None)) | (KeyCutoff.leased_until < now)
    # A cut-off opened while another caller holds the key (a reactivation while the revoke is
    # in flight) waits for that caller: one caller per key, whatever its cut-offs.
    held = aliased(KeyCutoff)
    in_flight = exists().where(
        held.key_id == KeyCutoff.key_id,
        held.acknowledged_at.is_(None),
        held.via_store.is_(via_store),
        held.command == PROOF if proof else held.command != PROOF,
        held.leased_until >= now,
    )
    pending = (
        KeyCutoff.acknowledged_at.is_(None),
        KeyCutoff.via_store.is_(via_store),
        _stage(proof),
        free,
        ~in_flight,
    )
    candidates = select(KeyCutoff.key_id).where(*pending, KeyCutoff.next_attempt_at <= now)
    if key_ids is not None:
        candidates = candidates.where(KeyCutoff.key_id.in_(key_ids))
    keys = sorted(set(session.scalars(candidates.limit(batch))))
    if not keys:
        return []
    # Every pending cut-off of a claimed key is leased; the WHERE is checked again under the
    # row lock (PostgreSQL), so of two concurrent claims only one gets a given key.
    claimed = session.scalars(
        update(KeyCutoff)
        .where(KeyCutoff.key_id.in_(keys), *pending)
        .values(leased_until=now + lease, attempts=KeyCutoff.attempts + 1)
        .returning(KeyCutoff.key_id)
        .execution_options(synchronize_session=False)
    ).all()
    return sorted(set(claimed))


def record_failure(
    session: Session,
    *,
    key_ids: list[uuid.UUID],
    error: str,
    retry_base: float,
    retry_max: float,
    now: datetime | None = None,
    proof: bool = False,
    retry_after: float | None = None,
) -> None:
    """The gateway (or the store) did not acknowledge: release the lease and wait before the
    next attempt; at least `retry_after` seconds when the answer asked for it (its
    Retry-After), up to `retry_max`."""
    now = now or utcnow()
    rows = session.scalars(
        select(KeyCutoff)
        .where(KeyCutoff.key_id.in_(key_ids), KeyCutoff.acknowledged_at.is_(None), _stage(proof))
        .execution_options(populate_existing=True)  # claim_due changed them behind the ORM
    )
    for cutoff in rows:
        wait = backoff(
            cutoff.attempts, retry_base=retry_base, retry_max=retry_max, asked=retry_after
        )
        cutoff.leased_until = None
        # A cut-off planned for later (a re-invalidation) keeps its time.
        cutoff.next_attempt_at = max(cutoff.next_attempt_at, now + timedelta(seconds=wait))
        cutoff.last_error = error[:500]


def release(session: Session, *, key_ids: list[uuid.UUID], due_at: datetime | None = None) -> None:
    """Give these keys back untried (the caller ran out of time, or the store asked to be left
    alone until `due_at`): due again at once, or not before `due_at`."""
    if key_ids:
        values: dict[str, Any] = {"leased_until": None}
        if due_at is not None:
            due = literal(due_at, UTCDateTime())
            values["next_attempt_at"] = case(
                (KeyCutoff.next_attempt_at < due, due), else_=KeyCutoff.next_attempt_at
            )
        session.execute(
            update(KeyCutoff)
            .where(
                KeyCutoff.key_id.in_(key_ids),
                KeyCutoff.acknowledged_at.is_(None),
                _stage(proof=False),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def acknowledge(
    session: Session,
    *,
    key_ids: list[uuid.UUID],
    called_at: datetime,
    at: datetime,
    proof: bool = False,
) -> list[Clock]:
    """These keys are done as of a call made at `called_at` (the gateway forgot them; for a
    budget, the store settled its command and no gateway is involved): the cut-offs
    requested before it, whose store command (if any) is settled, are done; an incident whose
    overdue cut-offs are all done now clears. The clocks of the revocations now complete."""
    if not key_ids:
        return []
    done = session.execute(
        select(KeyCutoff, VirtualApiKey.revoked_by_revocation_id)
        .outerjoin(VirtualApiKey, VirtualApiKey.id == KeyCutoff.key_id)
        .where(
            KeyCutoff.key_id.in_(key_ids),
            KeyCutoff.acknowledged_at.is_(None),
            KeyCutoff.requested_at <= called_at,
            _stage(proof),
            _store_settled(),
        )
        .execution_options(populate_existing=True)
    ).all()
    rows = [cutoff for cutoff, _revocation in done]
    for cutoff in rows:
        cutoff.acknowledged_at, cutoff.leased_until = at, None
    session.flush()
    for organisation_id in sorted({c.organisation_id for c in rows if c.alarmed_at}):
        _clear_incident_if_over(session, organisation_id, at)
    return _clocks(done)


def _clocks(done: Sequence[tuple[KeyCutoff, uuid.UUID | None]]) -> list[Clock]:
    """One clock per revocation among these cut-offs: a person's keys share theirs. Told apart
    by the revocation that revoked the key (a cut-off of a key revoked otherwise, or restored
    since, is one of its own), not by the arrival: an LDAP run's revocations all arrive at
    the run's start, and one gateway call acknowledges them together."""
    by_revocation = {
        revocation_id or cutoff.id: Clock(cutoff.source or "unknown", cutoff.arrived_at)
        for cutoff, revocation_id in done
        if cutoff.arrived_at is not None
    }
    return sorted(by_revocation.values(), key=lambda clock: clock.arrived_at)


def proofs_pending(session: Session, *, key_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """The revocation commands these keys' pending proofs are for (command id -> key id)."""
    rows = session.execute(
        select(KeyCutoff.command_id, KeyCutoff.key_id).where(
            KeyCutoff.key_id.in_(key_ids),
            KeyCutoff.acknowledged_at.is_(None),
            _stage(proof=True),
            KeyCutoff.command_id.is_not(None),
        )
    )
    return {command_id: key_id for command_id, key_id in rows if command_id is not None}


def _store_settled() -> ColumnElement[bool]:
    """No store command, or one the store has answered for good (acknowledged, or 404) and,
    for a store cut-off whose command the gateway must hear of, whose gateway invalidation
    the store cut-off's own caller recorded (marking the command and opening its proof): a
    gateway call made for another cut-off of the key (a re-invalidation) does not complete
    it, or the revocation would end without the gateway ever asked about the key."""
    settled = exists().where(
        StoreCommand.id == KeyCutoff.command_id,
        or_(StoreCommand.acknowledged_at.is_not(None), StoreCommand.abandoned_at.is_not(None)),
        or_(
            KeyCutoff.via_store.is_(False),
            StoreCommand.command_type.not_in(GATEWAY_COMMANDS),
            StoreCommand.gateway_invalidated_at.is_not(None),
        ),
    )
    return or_(KeyCutoff.command_id.is_(None), settled)


def raise_alarms(
    session: Session, *, deadline: timedelta, actor: Actor, now: datetime | None = None
) -> list[CutoffIncident]:
    """Cut-offs past their deadline: one urgent alarm per organisation and incident; the new
    incidents (an incident already open absorbs further overdue keys without a new alarm)."""
    now = now or utcnow()
    query = select(KeyCutoff).where(
        KeyCutoff.acknowledged_at.is_(None),
        KeyCutoff.alarmed_at.is_(None),
        KeyCutoff.requested_at <= now - deadline,
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    by_org: dict[uuid.UUID, list[KeyCutoff]] = defaultdict(list)
    for cutoff in session.scalars(query.order_by(KeyCutoff.requested_at)):
        by_org[cutoff.organisation_id].append(cutoff)
    opened = []
    for organisation_id, overdue in sorted(by_org.items()):
        for cutoff in overdue:
            cutoff.alarmed_at = now
        incident = open_incident(session, organisation_id)
        if incident is None:
            incident = _new_incident(session, organisation_id, now)
            if incident is not None:
                _announce_missed(session, incident, overdue, deadline, actor, now)
                opened.append(incident)
            else:  # a reaper running at once opened it first: these keys join its incident
                incident = open_incident(session, organisation_id)
        if incident is not None:
            incident.keys_overdue += len(overdue)
    return opened


def _new_incident(
    session: Session, organisation_id: uuid.UUID, now: datetime
) -> CutoffIncident | None:
    """A new open incident, or None when another has been opened meanwhile (the unique
    open-incident index refuses a second; the savepoint keeps this transaction's work)."""
    try:
        with session.begin_nested():
            incident = CutoffIncident(organisation_id=organisation_id, opened_at=now)
            session.add(incident)
            session.flush()
    except IntegrityError:
        return None
    return incident


def open_incident(session: Session, organisation_id: uuid.UUID) -> CutoffIncident | None:
    query = select(CutoffIncident).where(
        CutoffIncident.organisation_id == organisation_id, CutoffIncident.cleared_at.is_(None)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalar(query.order_by(CutoffIncident.opened_at).limit(1))


def _announce_missed(
    session: Session,
    incident: CutoffIncident,
    overdue: list[KeyCutoff],
    deadline: timedelta,
    actor: Actor,
    now: datetime,
) -> None:
    oldest = min(c.requested_at for c in overdue)
    detail = {
        "incident_id": str(incident.id),
        "severity": "urgent",
        "deadline_seconds": deadline.total_seconds(),
        "keys_overdue": len(overdue),
        "key_ids": [str(c.key_id) for c in overdue[:MAX_KEYS_IN_PAYLOAD]],
        "oldest_requested_at": oldest.isoformat(),
        "oldest_age_seconds": round((now - oldest).total_seconds(), 1),
        "last_error": next((c.last_error for c in overdue if c.last_error), None),
    }
    audit.record(
        session,
        actor=actor,
        organisation_id=incident.organisation_id,
        action=EVENT_DEADLINE_MISSED,
        target_type="cutoff_incident",
        target_id=incident.id,
        after=detail,
    )
    notify(
        session,
        organisation_id=incident.organisation_id,
        event=EVENT_DEADLINE_MISSED,
        payload=detail,
        recipient_user_ids=_admins(session, incident.organisation_id),
    )


def _clear_incident_if_over(session: Session, organisation_id: uuid.UUID, at: datetime) -> None:
    incident = open_incident(session, organisation_id)
    if incident is None:
        return
    still_overdue = session.scalar(
        select(KeyCutoff.id)
        .where(
            KeyCutoff.organisation_id == organisation_id,
            KeyCutoff.acknowledged_at.is_(None),
            KeyCutoff.alarmed_at.is_not(None),
        )
        .limit(1)
    )
    if still_overdue is not None:
        return
    incident.cleared_at = at
    detail = {
        "incident_id": str(incident.id),
        "opened_at": incident.opened_at.isoformat(),
        "cleared_at": at.isoformat(),
        "keys_overdue": incident.keys_overdue,
        "lasted_seconds": round((at - incident.opened_at).total_seconds(), 1),
    }
    audit.record(
        session,
        actor=GATEWAY_ACTOR,
        organisation_id=organisation_id,
        action="cutoff.deadline_recovered",
        target_type="cutoff_incident",
        target_id=incident.id,
        before={"cleared_at": None},
        after=detail,
    )
    notify(
        session,
        organisation_id=organisation_id,
        event=EVENT_RECOVERED,
        payload=detail,
        recipient_user_ids=_admins(session, organisation_id),
    )


def _admins(session: Session, organisation_id: uuid.UUID) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(User.id)
            .where(
                User.organisation_id == organisation_id,
                User.role == Role.ORG_ADMIN,
                User.status == UserStatus.ACTIVE,
            )
            .order_by(User.id)
        )
    )


def purge_acknowledged(session: Session, *, acknowledged_before: datetime, limit: int) -> int:
    """Delete at most `limit` cut-offs acknowledged before `acknowledged_before`; how many
    went. A done cut-off is never read again: each key's `api_key.gateway_invalidated` audit
    event is the record, and one not yet acknowledged is never purged."""
    return retention.delete_batch(
        session, KeyCutoff.id, KeyCutoff.acknowledged_at < acknowledged_before, limit=limit
    )


def record_purge(session: Session, purged: int, *, acknowledged_before: datetime) -> None:
    retention.record_purge(
        session,
        actor=PURGE_ACTOR,
        action="cutoff.purged",
        table=KeyCutoff.__tablename__,
        purged=purged,
        before=acknowledged_before,
    )
