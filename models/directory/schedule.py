"""Queueing directory syncs: the schedule's due ones and an admin's request."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import audit, outbox
from models.actor import Actor
from models.entities import DirectoryConnector
from models.enums import SyncKind

TASK_SYNC = "directory.sync"


def enqueue_due_syncs(session: Session, *, now: datetime) -> list[tuple[str, str]]:
    """Queue a full or incremental sync for each enabled connector whose interval has passed."""
    queued: list[tuple[str, str]] = []
    for connector in session.scalars(
        select(DirectoryConnector).where(DirectoryConnector.enabled.is_(True))
    ):
        kind = ""
        full_every = timedelta(minutes=connector.full_sync_minutes)
        incremental_every = timedelta(minutes=connector.incremental_minutes)
        if connector.full_sync_minutes and (
            connector.full_scheduled_at is None or now - connector.full_scheduled_at >= full_every
        ):
            kind = SyncKind.FULL.value
            connector.full_scheduled_at = now
            connector.incremental_scheduled_at = now
        elif connector.incremental_minutes and (
            connector.incremental_scheduled_at is None
            or now - connector.incremental_scheduled_at >= incremental_every
        ):
            kind = SyncKind.INCREMENTAL.value
            connector.incremental_scheduled_at = now
        if kind:
            outbox.enqueue(
                session, TASK_SYNC, connector_id=str(connector.id), kind=kind, trigger="schedule"
            )
            queued.append((str(connector.id), kind))
    return queued


def request_sync(
    session: Session,
    *,
    connector: DirectoryConnector,
    kind: SyncKind,
    dry_run: bool,
    actor: Actor,
) -> None:
    """Queue a sync now (the worker runs it after this transaction commits)."""
    outbox.enqueue(
        session,
        TASK_SYNC,
        connector_id=str(connector.id),
        kind=kind.value,
        trigger=str(actor),
        dry_run=dry_run,
    )
    audit.record_change(
        session,
        actor=actor,
        subject=connector,
        action="directory_sync.requested",
        target_type="directory",
        after={"kind": kind.value, "dry_run": dry_run},
    )
