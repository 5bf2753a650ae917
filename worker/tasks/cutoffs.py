"""The cut-off reaper: alarms on cut-offs past their deadline, then re-drives what is due: the
gateway invalidations (embedded), the store commands and the proofs of revocation (bridged)."""

from __future__ import annotations

from datetime import timedelta

import structlog
from prometheus_client import Counter

from models.actions import cutoffs
from models.actor import Actor
from worker.runtime import runtime
from worker.tasks import gateway, odock
from worker.tasks.base import task
from worker.time_to_kill import observe

log = structlog.get_logger(__name__)

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
    return len(clocks)
