"""Applying stored IdP event deliveries, after the receiver committed them.

The receiver wakes `events.drain` for the delivery's organisation (coalesced, see
worker.wakeups); the drain applies that organisation's received deliveries a batch per
transaction until none is left. A periodic sweep wakes drains for deliveries left waiting.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from models.actions import idp_events, odock_events
from models.base import utcnow
from worker import turns, wakeups
from worker.runtime import runtime
from worker.tasks.base import TransientError, task

# A delivery this old and still received has lost its wake-up (broker down, worker killed).
WAITING_TOO_LONG = timedelta(seconds=10)
# After a batch that was not full, wait this long before the next: under a steady stream a
# batch costs ~3 ms whatever its size, and without a pause the drain would take the
# deliveries one by one as they arrive. It delays an event by at most this much.
LINGER_SECONDS = 0.05
# A drain that finds another at work keeps its wake-up flag up this long at most: deliveries
# stored meanwhile ride on it (the holder looks again before it returns), and should the holder
# die, the next delivery after this wakes a drain again. A long run sees one such leaver each.
LEAVER_FLAG_SECONDS = 5


@task(idp_events.TASK_DRAIN)
def drain_deliveries(organisation_id: str) -> int:
    """Apply the organisation's received deliveries until none is left.

    One drain per organisation at a time: a second one woken meanwhile leaves at once instead
    of waiting in a worker slot (on the first one's row locks and mass-change gate), its flag
    kept up briefly so that deliveries stored meanwhile ride on it instead of waking more runs.
    The holder lowers the flag as it takes its turn, and again once it lets go, and only then
    reads the queue once more: a flag left up after the holder returns would keep every later
    delivery from waking a drain until it expired or the sweep came (tens of seconds). What
    commits after that read raises the flag again and wakes a new run, which finds the turn
    free. A holder that dies mid-run (its worker killed) leaves no flag of its own; one that
    fails lowers it and is retried.
    """
    wake_up = (idp_events.TASK_DRAIN, {"organisation_id": organisation_id})
    try:
        return _drain_in_turn(uuid.UUID(organisation_id), wake_up)
    except Exception:
        wakeups.taken(*wake_up)  # the next delivery wakes a drain instead of waiting for us
        raise  # a database gone away mid-run is retried (worker/tasks/base.py)


def _drain_in_turn(organisation: uuid.UUID, wake_up: tuple[str, dict[str, str]]) -> int:
    drained = 0
    while True:
        with turns.turn(runtime().engine, turns.key_of(organisation)) as mine:
            if not mine:
                wakeups.hold(*wake_up, seconds=LEAVER_FLAG_SECONDS)
                return drained  # the holder lowers the flag and looks again once it lets go
            wakeups.taken(*wake_up)
            drained += _drain(organisation, mine)
        wakeups.taken(*wake_up)
        with runtime().sessions() as session:
            if not idp_events.has_received(session, organisation):
                return drained


def _drain(organisation_id: uuid.UUID, held: turns.Turn) -> int:
    drained = 0
    while batch := _apply_batch(organisation_id, held):
        drained += batch
        if batch < idp_events.DRAIN_BATCH:
            time.sleep(LINGER_SECONDS)
    return drained


def _apply_batch(organisation_id: uuid.UUID, held: turns.Turn) -> int:
    # On the turn's own connection: a drain whose turn was lost with its connection cannot
    # commit a batch beside the drain that took the turn after it (and apply events out of
    # their order).
    bind = {"bind": held.connection} if held.connection is not None else {}
    with runtime().sessions(**bind) as session:
        deliveries = idp_events.claim_received(session, organisation_id)
        try:
            idp_events.process_received(session, deliveries)
            armed = odock_events.arm_review(session, deliveries)
            session.commit()
        except IntegrityError as exc:  # a race with another writer
            raise TransientError(f"{type(exc).__name__} draining {organisation_id}") from exc
        odock_events.review_written(session, armed)
    return len(deliveries)


@task("events.wake_waiting")
def wake_waiting_drains() -> int:
    with runtime().sessions() as session:
        waiting = idp_events.waiting_organisations(
            session, received_before=utcnow() - WAITING_TOO_LONG
        )
    for organisation_id in waiting:
        wakeups.wake(idp_events.TASK_DRAIN, {"organisation_id": str(organisation_id)})
    return len(waiting)
