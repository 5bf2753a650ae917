"""Carrying out a recorded approval of a quarantined run (models.directory.approvals).

Like a sync, it holds the connector's lease, renewed by a heartbeat, and owns its
transactions: it re-reads the directory between them.
"""

from __future__ import annotations

import uuid

import structlog

from connectors.ldap.errors import DirectoryConfigError, DirectoryError
from connectors.ldap.plan import Plan
from connectors.ldap.reconcile import recheck
from models import locked_rows
from models.actor import Actor
from models.db import SessionFactory, is_unavailable, transaction
from models.directory import approvals, runs
from models.directory.apply import plan_team_retirements
from models.directory.read import ReadTarget
from models.directory.runs import SyncRunning
from models.entities import DirectoryConnector, DirectorySyncRun
from models.enums import SyncRunStatus
from models.errors import DomainError, Unavailable
from models.settings import Settings
from models.sync_lock import Holder, SyncLock
from worker.directory_sync import SyncOutcome, deleted_outcome, read_full_plan
from worker.lease_heartbeat import Heartbeat

log = structlog.get_logger(__name__)


def apply_approval(
    sessions: SessionFactory,
    settings: Settings,
    *,
    run_id: uuid.UUID,
    actor: Actor,
    lock: SyncLock | None = None,
    holder: Holder | None = None,
) -> SyncOutcome:
    """Carry out a recorded approval: re-read the directory and apply what still holds.

    It holds the connector's lease, renewed by a heartbeat, as a sync does; writes nothing once
    that lease is lost. Refused (the run waits again, with the reason) when a later sync of
    the connector has completed or the directory cannot be read; the held changes the current
    read no longer calls for are dropped and reported. Raises SyncRunning while a sync holds
    the lease, and the database's error when it is unavailable (the approval is not refused
    for a dropped connection: it stays recorded, for the task's retry).
    """
    try:
        with transaction(sessions) as session:
            run = session.get(DirectorySyncRun, run_id)
            if run is None:  # its connector was deleted since
                return SyncOutcome(str(run_id), "not_found", error="the run no longer exists")
            if run.status is not SyncRunStatus.APPROVING:  # applied or refused already
                summary = (run.plan or {}).get("summary", {})
                return SyncOutcome(str(run_id), run.status.value, summary, run.error)
            connector = session.get_one(DirectoryConnector, run.connector_id)
            target = ReadTarget.of(connector, settings)
            session.expunge(connector)
    except DirectoryConfigError as exc:  # settings that make no search: it waits, saying so
        return _approval_refused(sessions, run_id, exc)
    lock = lock or SyncLock(sessions)
    ttl = settings.directory_sync_lease_seconds
    name = runs.lease_name(target.connector.id)
    token = lock.acquire(name, ttl=ttl, holder=holder)
    if token is None:
        raise SyncRunning("a sync of this connector is running; the approval waits for it")
    try:
        with Heartbeat(lock, name, token, ttl=ttl) as heartbeat:
            try:
                return _apply_approval(sessions, target, heartbeat, run_id, actor)
            except runs.ConnectorDeleted as exc:
                return deleted_outcome(run_id, exc)
            except BaseException as exc:
                if is_unavailable(exc):
                    raise  # the approval stands: the task's retry (or the stall sweep) applies it
                outcome = _approval_refused(sessions, run_id, exc)
                if not isinstance(exc, Exception):
                    raise
                return outcome
    finally:
        lock.release(name, token)


def _apply_approval(
    sessions: SessionFactory,
    target: ReadTarget,
    heartbeat: Heartbeat,
    run_id: uuid.UUID,
    actor: Actor,
) -> SyncOutcome:
    with transaction(sessions) as session:  # outdated already: no need to read
        run, _connector = runs.locked_run(session, run_id=run_id, connector_id=target.connector.id)
        approvals.check_approvable(session, run=run)
    try:
        current = read_full_plan(sessions, target, progress=lambda _n: None)
    except DirectoryError as exc:
        raise Unavailable(
            f"the directory could not be read to re-check the plan: {exc.message}",
            error_code=exc.code,
        ) from None
    with transaction(sessions) as session:
        run, connector = runs.locked_run(session, run_id=run_id, connector_id=target.connector.id)
        heartbeat.check()
        plan_team_retirements(session, connector=connector, plan=current)
        approvals.check_approvable(session, run=run, statuses=(SyncRunStatus.APPROVING,))
        assert run.plan is not None
        kept, dropped = recheck(Plan.from_dict(run.plan), current)
        approvals.approve_run(session, run=run, actor=actor, plan=kept, dropped=dropped)
        return SyncOutcome(str(run_id), run.status.value, kept.summary(), run.error)


def _approval_refused(
    sessions: SessionFactory, run_id: uuid.UUID, exc: BaseException
) -> SyncOutcome:
    """Nothing of the approval was applied: the run waits again, saying why."""
    code, message = runs.CRASHED, runs.one_line(exc)
    if isinstance(exc, DirectoryError):
        code, message = exc.code, exc.message
    elif isinstance(exc, DomainError):
        code, message = str(exc.details.get("error_code", exc.code)), exc.message
    log.warning("directory_sync.approval_refused", run_id=str(run_id), error=message)
    with transaction(sessions) as session:
        run = locked_rows.locked_or_none(session, DirectorySyncRun, run_id)
        if run is None:  # its connector was deleted meanwhile: nothing left to refuse
            return deleted_outcome(run_id, runs.ConnectorDeleted(message))
        if run.status is SyncRunStatus.APPROVING:
            approvals.refuse_approval(session, run=run, code=code, message=message)
        return SyncOutcome(str(run_id), run.status.value, error=message)
