"""Access end dates: the beat's tick revokes everyone whose date has come."""

from __future__ import annotations

import structlog

from models.actions import access_end, departure_notices
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
    total = 0
    while True:
        with current.sessions() as session:
            due = access_end.due_user_ids(session, now=utcnow(), limit=BATCH)
        ended = 0
        for user_id in due:
            with current.sessions() as session:
                ended += access_end.end_access(session, user_id=user_id, now=utcnow(), actor=actor)
                session.commit()
        total += ended
        if len(due) < BATCH or ended == 0:
            return total


def _send_notices(current: Runtime, actor: Actor) -> None:
    """Departure notices due now, one committed transaction each."""
    with current.sessions() as session:
        due = departure_notices.due_notice_ids(session, now=utcnow())
    for user_id in due:
        with current.sessions() as session:
            departure_notices.send_notice(session, user_id=user_id, now=utcnow(), actor=actor)
            session.commit()
