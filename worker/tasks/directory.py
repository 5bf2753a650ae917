"""Directory syncs: one task per connector run, and the beat job that fans out due ones."""

from __future__ import annotations

import uuid

import structlog
from celery import current_task

from models.actor import Actor
from models.base import utcnow
from models.db import transaction
from models.directory.approvals import reap_stalled_approvals
from models.directory.runs import SyncRunning, reap_stale_runs
from models.directory.schedule import enqueue_due_syncs
from models.entities import DirectoryConnector
from models.enums import SyncKind
from models.sync_lock import Holder
from worker.directory_approval import apply_approval
from worker.directory_sync import run_sync
from worker.runtime import runtime
from worker.tasks.base import TransientError, task

log = structlog.get_logger(__name__)


@task("directory.sync")
def sync_connector(
    connector_id: str, kind: str = "full", trigger: str = "schedule", dry_run: bool = False
) -> None:
    rt = runtime()
    with rt.sessions() as session:
        connector = session.get(DirectoryConnector, uuid.UUID(connector_id))
        enabled = connector is not None and connector.enabled
        session.rollback()
    if not enabled:
        return  # deleted or switched off since it was queued
    outcome = run_sync(
        rt.sessions,
        rt.settings,
        connector_id=uuid.UUID(connector_id),
        kind=SyncKind(kind),
        dry_run=dry_run,
        trigger=trigger,
        holder=_attempt(),
    )
    log.info(
        "directory.synced", connector_id=connector_id, status=outcome.status, **outcome.summary
    )


@task("directory.apply_approval")
def apply_approved_plan(run_id: str, actor: dict[str, str | None]) -> None:
    rt = runtime()
    try:
        outcome = apply_approval(
            rt.sessions,
            rt.settings,
            run_id=uuid.UUID(run_id),
            actor=Actor.from_json(actor),
            holder=_attempt(),
        )
    except SyncRunning as exc:
        raise TransientError(exc.message) from exc  # retried once the running sync has ended
    log.info("directory.approval_applied", run_id=run_id, status=outcome.status, **outcome.summary)


def _attempt() -> Holder | None:
    """This attempt of the running task: it takes back a lease that an earlier attempt left
    when the database dropped it mid-run (models.sync_lock)."""
    if not current_task or not current_task.request.id:
        return None
    return Holder.attempt(current_task.request.id, current_task.request.retries or 0)


@task("directory.schedule_due")
def schedule_due() -> None:
    rt = runtime()
    with transaction(rt.sessions) as session:
        reap_stale_runs(session, now=utcnow())
        lease = rt.settings.directory_sync_lease_seconds
        reap_stalled_approvals(session, now=utcnow(), lease_seconds=lease)
        enqueue_due_syncs(session, now=utcnow())
