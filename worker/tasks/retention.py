"""Bookkeeping purged after its retention, hourly (beat): outbox messages completed more than
OUTBOX_RETENTION_DAYS ago, key cut-offs acknowledged more than CUTOFF_RETENTION_DAYS ago.
Each batch is a transaction of its own, audited in it (models/retention.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from models import outbox
from models.actions import cutoffs
from models.base import utcnow
from models.db import SessionFactory
from models.retention import Purge, in_batches
from worker.runtime import runtime
from worker.tasks.base import task

TASK_PURGE_OUTBOX = "outbox.purge_completed"
TASK_PURGE_CUTOFFS = "cutoffs.purge_acknowledged"
# Rows deleted per transaction: each batch's lock and transaction stay short.
PURGE_BATCH = 1000


@task(TASK_PURGE_OUTBOX)
def purge_outbox() -> int:
    current = runtime()
    before = utcnow() - timedelta(days=current.settings.outbox_retention_days)
    return purge_outbox_before(current.sessions, completed_before=before).purged


@task(TASK_PURGE_CUTOFFS)
def purge_cutoffs() -> int:
    current = runtime()
    before = utcnow() - timedelta(days=current.settings.cutoff_retention_days)
    return purge_cutoffs_before(current.sessions, acknowledged_before=before).purged


def purge_outbox_before(
    sessions: SessionFactory, *, completed_before: datetime, batch: int = PURGE_BATCH
) -> Purge:
    return in_batches(
        sessions,
        batch=batch,
        delete=lambda s, n: outbox.purge_completed(s, completed_before=completed_before, limit=n),
        record=lambda s, gone: outbox.record_purge(s, gone, completed_before=completed_before),
    )


def purge_cutoffs_before(
    sessions: SessionFactory, *, acknowledged_before: datetime, batch: int = PURGE_BATCH
) -> Purge:
    return in_batches(
        sessions,
        batch=batch,
        delete=lambda s, n: cutoffs.purge_acknowledged(
            s, acknowledged_before=acknowledged_before, limit=n
        ),
        record=lambda s, gone: cutoffs.record_purge(
            s, gone, acknowledged_before=acknowledged_before
        ),
    )
