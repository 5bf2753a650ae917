"""The cut-off reaper: alarms on cut-offs past their deadline, then re-drives what is due: the
gateway invalidations (embedded), the store commands and the proofs of revocation (bridged)."""

from __future__ import annotations

from datetime import timedelta

import structlog
from prometheus_client import Counter
from sqlalchemy.exc import DBAPIError

from models.actions import cutoffs, review_sweep
from models.actor import Actor
from models.db import is_unavailable
from worker.runtime import runtime
from worker.tasks import gateway, odock
from worker.tasks.base import task
from worker.time_to_kill import observe

log = structlog.get_logger(__name__)

# Seconds a revocation's own task has to open its review before the reaper does it.
REVIEW_GRACE = 5.0

DEADLINE_ALARMS = Counter(
    "odock_cutoff_deadline_alarms_total", "Alarms raised: cut-offs past their deadline"
)


@task("cutoffs.reap", autoretry_for=())
def reap() -> int:
    """Alarm on the cut-offs past their deadline, then re-drive those that are due; the number
    of revocations completed.

    Alarms first: a cut-off that missed its deadline while no reaper ran (its worker was
    being restarted) is reported even when this run's call then succeeds (and clears it)."""
    settings = runtime().settings
    with runtime().sessions() as session:
        opened = cutoffs.raise_alarms(
            session,
            deadline=timedelta(seconds=settings.cutoff_deadline),
            actor=Actor.schedule("cutoffs.reap"),
        )
        session.commit()
    if opened:
        DEADLINE_ALARMS.inc(len(opened))
        log.error("cutoffs.deadline_missed", organisations=len(opened))
    clocks = gateway.drive(key_ids=None, reason="re-driven")
    if settings.odock_management_url:
        clocks += odock.drive_store(key_ids=None)
    odock.prove(key_ids=None)  # a proof is pending only where the bridge revoked a key
    observe(clocks)
    _open_missing_reviews()
    return len(clocks)


def _open_missing_reviews() -> None:
    """A revocation's review opens from its task right after commit; one whose task died
    with a worker is opened here, seconds later, not by the outbox's 900 s re-send. One
    transaction each, so one review's locks are not held while the next opens."""
    actor = Actor.schedule("cutoffs.reap")
    opened = 0
    with runtime().sessions() as session:
        missing = review_sweep.revocations_missing_review(
            session,
            older_than=timedelta(seconds=REVIEW_GRACE),
            within=timedelta(days=1),  # older ones are the hourly sweep's
        )
        session.commit()
        for revocation_id in missing:
            try:
                review = review_sweep.open_missing_review(
                    session, revocation_id=revocation_id, actor=actor
                )
                session.commit()
            except DBAPIError as error:
                session.rollback()
                if not is_unavailable(error):
                    raise
                log.info("cutoffs.review_open_deferred", revocation_id=str(revocation_id))
                continue
            opened += review is not None
    if opened:
        log.warning("cutoffs.reviews_opened_late", reviews=opened)
