"""Access end dates: the beat's tick revokes everyone whose date has come (past the
mass-change gate, told first how many are due in each organisation)."""

from __future__ import annotations

import uuid
from datetime import datetime

import structlog

from models.actions import access_end, departure_notices
from models.actions.lifecycle import Outcome
from models.actor import Actor
from models.base import utcnow
from worker import turns
from worker.runtime import Runtime, runtime
from worker.tasks.base import task

log = structlog.get_logger(__name__)

SCAN_KEY = 0x0D0C_E4D5  # the advisory-lock id of the end-date scan
BATCH = 200


@task("access.end_due")
def end_due() -> int:
    """Revoke, one committed transaction each, the people whose end date has come; then send
    the departure notices that are due (after: a revocation must not wait behind a preview)."""
    current = runtime()
    with turns.turn(current.engine, SCAN_KEY) as mine:
        if not mine:
            return 0  # another worker is on it
        actor = Actor.schedule(access_end.JOB)
        total = _end_due_access(current, actor)
        _send_notices(current, actor)
    if total:
        log.info("access.ended", count=total)
    return total


def _end_due_access(current: Runtime, actor: Actor) -> int:
    """The people due at one moment, the one the gate was told of: a date that comes during
    the run waits for the next beat, which announces it (read later, it was revoked without
    being counted ahead, and a batch over the thresholds was cut off after the first few)."""
    now = utcnow()
    with current.sessions() as session:
        access_end.announce_due(session, now=now, actor=actor)
        session.commit()
    total = 0
    while True:
        with current.sessions() as session:
            due = access_end.due_user_ids(session, now=now, limit=BATCH)
        outcomes = [_end_one(current, user_id, now, actor) for user_id in due]
        total += outcomes.count(Outcome.APPLIED)
        # Revoked and held people leave the scan; a batch of neither would come back as is.
        if len(due) < BATCH or all(o is Outcome.UNCHANGED for o in outcomes):
            return total


def _end_one(current: Runtime, user_id: uuid.UUID, now: datetime, actor: Actor) -> Outcome:
    with current.sessions() as session:
        outcome = access_end.end_access(session, user_id=user_id, now=now, actor=actor)
        session.commit()
    return outcome


def _send_notices(current: Runtime, actor: Actor) -> None:
    """Departure notices due now, one committed transaction each."""
    with current.sessions() as session:
        due = departure_notices.due_notice_ids(session, now=utcnow())
    for user_id in due:
        with current.sessions() as session:
            departure_notices.send_notice(session, user_id=user_id, now=utcnow(), actor=actor)
            session.commit()
