"""Outbox upkeep: completed messages purged after OUTBOX_RETENTION_DAYS, a batch per
transaction (models/outbox.py keeps every message not completed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from models import outbox
from models.base import utcnow
from models.db import SessionFactory
from worker.runtime import runtime
from worker.tasks.base import task

TASK_PURGE_COMPLETED = "outbox.purge_completed"
# Messages deleted per transaction: each batch's lock and transaction stay short.
PURGE_BATCH = 1000


@dataclass(frozen=True)
class Purge:
    purged: int
    batches: int


@task(TASK_PURGE_COMPLETED)
def purge_completed() -> int:
    current = runtime()
    retention = timedelta(days=current.settings.outbox_retention_days)
    return purge(current.sessions, completed_before=utcnow() - retention).purged


def purge(
    sessions: SessionFactory, *, completed_before: datetime, batch: int = PURGE_BATCH
) -> Purge:
    """Delete the messages completed before `completed_before`, `batch` at a time, each
    batch committed; the last transaction audits the run if it deleted anything."""
    purged = batches = 0
    while True:
        with sessions() as session:
            gone = outbox.purge_completed(session, completed_before=completed_before, limit=batch)
            purged, batches = purged + gone, batches + 1
            done = gone < batch
            if done and purged:
                outbox.record_purge(
                    session, purged=purged, batches=batches, completed_before=completed_before
                )
            session.commit()
        if done:
            return Purge(purged, batches)
