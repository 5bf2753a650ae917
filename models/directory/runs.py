"""A directory sync run's record: started, failed, quarantined, completed, reaped.

A run is `running` only while its sync holds the connector's lease (models.sync_lock); the
orchestration that holds the lease and commits is worker.directory_sync.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from connectors.ldap.plan import Plan
from models import audit, locked_rows
from models.actor import Actor
from models.base import utcnow
from models.directory.apply import Applied, revoke_while_held
from models.directory.safety import emptied, leavers_who_cannot_wait
from models.entities import DirectoryConnector, DirectorySyncRun
from models.enums import Source, SyncKind, SyncRunStatus
from models.errors import Conflict, DomainError, NotFound
from models.notifications import notify
from models.queries import directory as queries
from models.sync_lock import live_leases

CRASHED = "internal_error"
# The database dropped the connection or refused it for now: the sync's task is retried soon.
DATABASE_UNAVAILABLE = "database_unavailable"


def ldap_actor(connector: DirectoryConnector) -> Actor:
    return Actor(Source.LDAP, f"ldap:{connector.name}")


def audit_run(
    session: Session,
    run: DirectorySyncRun,
    connector: DirectoryConnector,
    action: str,
    *,
    after: dict[str, Any],
    before: dict[str, Any] | None = None,
) -> None:
    """Audit what happened to a run, in its connector's name: every such event names the run."""
    audit.record(
        session,
        actor=ldap_actor(connector),
        organisation_id=run.organisation_id,
        action=action,
        target_type="directory",
        target_id=connector.id,
        before=before,
        after={"run_id": str(run.id), **after},
    )


def start_run(
    session: Session,
    *,
    connector: DirectoryConnector,
    kind: SyncKind,
    dry_run: bool,
    trigger: str,
) -> DirectorySyncRun:
    run = DirectorySyncRun(
        organisation_id=connector.organisation_id,
        connector_id=connector.id,
        kind=kind,
        dry_run=dry_run,
        trigger=trigger,
    )
    session.add(run)
    session.flush()
    return run


def lease_name(connector_id: uuid.UUID) -> str:
    """The lease a sync of this connector holds while it runs (models.sync_lock)."""
    return f"directory-sync:{connector_id}"


INTERRUPTED = "sync_interrupted"


def reap_stale_runs(
    session: Session, *, now: datetime, held: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Fail the `running` runs whose sync is gone: its lease expired or was released.

    A run is `running` only while its sync holds the connector's lease, so a running run
    without a live lease was left by a process that died (kill -9, a lost host). With `held`,
    only that connector's runs are looked at, and the caller holds its lease: all are stale.
    """
    running = list(session.execute(queries.running_runs(held)))
    live: set[str] = set()
    if held is None:
        live = live_leases(session, [lease_name(row.connector_id) for row in running], now=now)
    reaped: list[uuid.UUID] = []
    for run in locked_without_lease(session, running, live=live, status=SyncRunStatus.RUNNING):
        connector = session.get_one(DirectoryConnector, run.connector_id)
        fail_run(
            session,
            run=run,
            code=INTERRUPTED,
            message="the sync stopped without finishing (its process died or lost its lease)",
            read=run.read_count,
            connector=connector,
        )
        reaped.append(run.id)
    return reaped


def locked_without_lease(
    session: Session,
    rows: Iterable[Row[uuid.UUID, uuid.UUID]],
    *,
    live: set[str],
    status: SyncRunStatus,
) -> Iterator[DirectorySyncRun]:
    """The runs of `rows` (id, connector_id) whose connector's lease is not in `live`, each
    locked and read again, that are still in `status`: a run may have moved on since the
    first read."""
    for row in rows:
        if lease_name(row.connector_id) in live:
            continue
        run = session.scalar(
            select(DirectorySyncRun)
            .where(DirectorySyncRun.id == row.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if run is not None and run.status is status:
            yield run


def _finish(run: DirectorySyncRun, status: SyncRunStatus) -> None:
    run.status = status
    run.finished_at = utcnow()
    run.duration_ms = int((run.finished_at - run.started_at).total_seconds() * 1000)


def fail_run(
    session: Session,
    *,
    run: DirectorySyncRun,
    code: str,
    message: str,
    read: int,
    connector: DirectoryConnector,
) -> None:
    """An aborted run: nobody was revoked; the organisation's admins are told why."""
    run.error_code = code
    run.error = message
    run.read_count = read
    run.error_count = max(run.error_count, 1)
    _finish(run, SyncRunStatus.FAILED)
    audit_run(
        session,
        run,
        connector,
        "directory_sync.failed",
        after={"error_code": code, "error": message},
    )
    notify_about_run(
        session, run, connector, "directory_sync.failed", error_code=code, error=message, revoked=0
    )


def notify_about_run(
    session: Session,
    run: DirectorySyncRun,
    connector: DirectoryConnector,
    event: str,
    **details: Any,
) -> None:
    """Tell the organisation's admins about a run: every such notification names the
    connector and the run, then says what happened."""
    notify(
        session,
        organisation_id=run.organisation_id,
        event=event,
        payload={
            "connector": connector.name,
            "connector_id": str(connector.id),
            "run_id": str(run.id),
            **details,
        },
    )


PLAN_ITEMS_KEPT = 1000


def record_plan(run: DirectorySyncRun, plan: Plan, *, applied: bool = False) -> None:
    """Store the plan: whole when it waits (dry run, quarantine), cut down once applied."""
    keep = PLAN_ITEMS_KEPT if applied else None
    run.plan = {**plan.to_dict(keep=keep), "emptied": emptied(plan), "summary": plan.summary()}
    run.read_count = plan.read
    run.unchanged_count = plan.unchanged
    run.error_count = len(plan.errors)


def quarantine_run(
    session: Session,
    *,
    run: DirectorySyncRun,
    connector: DirectoryConnector,
    plan: Plan,
    reason: str,
) -> None:
    """Hold the plan for an admin; its leavers who cannot wait are revoked now and move
    from `revokes` to `revoked_while_held`."""
    leavers = leavers_who_cannot_wait(session, connector=connector, plan=plan)
    if leavers:
        revoke_while_held(
            session, connector=connector, leavers=leavers, actor=ldap_actor(connector)
        )
        plan.revokes = [item for item in plan.revokes if not item.read_as_ended]
        plan.revoked_while_held = leavers
    record_plan(run, plan)
    run.error = reason
    _finish(run, SyncRunStatus.QUARANTINED)
    audit_run(
        session,
        run,
        connector,
        "directory_sync.quarantined",
        after={"reason": reason, "summary": plan.summary()},
    )
    notify_about_run(
        session, run, connector, "directory_sync.quarantined", reason=reason, summary=plan.summary()
    )


def complete_run(
    session: Session,
    *,
    run: DirectorySyncRun,
    connector: DirectoryConnector,
    plan: Plan,
    applied: Applied | None,
    status: SyncRunStatus,
) -> None:
    """Store the plan and counts; a full or incremental sync that applied moves the marks."""
    record_plan(run, plan, applied=applied is not None)
    if applied is not None:
        run.created_count = applied.created
        run.updated_count = applied.updated
        run.revoked_count = applied.revoked
        run.reactivated_count = applied.reactivated
        run.error_count = len(plan.errors) + len(applied.errors)
        if run.plan is not None:
            done = {
                "team_added": applied.team_added,
                "team_removed": applied.team_removed,
                "demoted": applied.demoted,
            }
            run.plan = {**run.plan, "applied": done}
            if applied.errors:
                run.plan["apply_errors"] = applied.errors
        if plan.watermark and run.kind in (SyncKind.FULL, SyncKind.INCREMENTAL):
            connector.watermark = plan.watermark
        now = utcnow()
        if run.kind is SyncKind.FULL:
            connector.last_full_sync_at = now
        connector.last_incremental_sync_at = now
    _finish(run, status)
    if plan.deprovision_blocked:
        run.error = f"deprovisioning withheld: {plan.deprovision_blocked}"
        if plan.withheld:
            also = ", ".join(f"{n} {kind}" for kind, n in sorted(plan.withheld.items()))
            run.error += f" (also withheld: {also})"
        audit_run(
            session,
            run,
            connector,
            "directory_sync.deprovision_withheld",
            after={
                "status": run.status.value,
                "reason": plan.deprovision_blocked,
                "withheld": dict(plan.withheld),
            },
        )
        notify_about_run(
            session,
            run,
            connector,
            "directory_sync.deprovision_withheld",
            reason=plan.deprovision_blocked,
            withheld=dict(plan.withheld),
        )


def get_run(
    session: Session, organisation_id: uuid.UUID, run_id: uuid.UUID, *, for_update: bool = False
) -> DirectorySyncRun:
    run = session.get(DirectorySyncRun, run_id, with_for_update=for_update)
    if run is None or run.organisation_id != organisation_id:
        raise NotFound("sync run not found")
    return run


class SyncInterrupted(DomainError):
    code = INTERRUPTED


class LeaseLost(SyncInterrupted):
    """Another sync took the connector's lease over (this one's had expired): stop reading."""

    @classmethod
    def after(cls, read: int) -> LeaseLost:
        return cls(
            "another sync took this connector's lease over (this sync's had expired): "
            f"it stopped reading after {read} entries; nothing applied"
        )


def stop_run(
    session: Session,
    *,
    run: DirectorySyncRun,
    connector: DirectoryConnector,
    stop: LeaseLost,
    read: int,
) -> None:
    """A sync that stopped reading because its lease was taken over: its run fails, unless
    the sync that took over has already ended it; the stop is audited either way."""
    if run.status is SyncRunStatus.RUNNING:
        fail_run(
            session, run=run, code=stop.code, message=stop.message, read=read, connector=connector
        )
    audit_run(
        session,
        run,
        connector,
        "directory_sync.stopped",
        after={"reason": stop.message, "read": read},
    )


class SyncRunning(Conflict):
    """The connector's lease is held by another sync: try again once it has finished."""


class ConnectorDeleted(DomainError):
    """The connector was deleted while its sync ran, and its runs with it: nothing to write."""

    code = "connector_deleted"


def locked_run(
    session: Session, *, run_id: uuid.UUID, connector_id: uuid.UUID
) -> tuple[DirectorySyncRun, DirectoryConnector]:
    """The run and its connector, locked and read again, the connector first as its delete
    takes them (then its runs); ConnectorDeleted when a delete committed meanwhile."""
    connector = locked_rows.locked_or_none(session, DirectoryConnector, connector_id)
    run = locked_rows.locked_or_none(session, DirectorySyncRun, run_id) if connector else None
    if connector is None or run is None:
        raise ConnectorDeleted("the connector was deleted while it synced; nothing was applied")
    return run, connector


def ensure_running(run: DirectorySyncRun) -> None:
    """A run a reaper ended (its lease had expired) takes no more writes from its sync."""
    if run.status is not SyncRunStatus.RUNNING:
        raise SyncInterrupted(f"the run was ended meanwhile ({run.status}: {run.error})")


def one_line(exc: BaseException) -> str:
    """The error's type and the first line of its message, short enough for a run's list."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."
