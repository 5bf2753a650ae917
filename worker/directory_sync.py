"""Running one directory sync: lock, read the directory, plan, check safety, apply, record.

The orchestration of models.directory: it holds the connector's lease (renewed by a
heartbeat thread), loads the owned users in a thread while the directory is read, and owns
the transactions, because it reads a directory between them. Only a bulk import on
PostgreSQL keeps two open while it reads, to write its creates meanwhile
(worker.directory_create_stream); it commits nothing before the plan is complete and checked.
Nobody is revoked unless every page was read and every entry had its stable id; a plan over
the threshold waits for an admin. A connector deleted while it syncs, or a lease another sync
took over (this one's expired), is seen at the lease's next beat, and the read stops at the
next page.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import structlog
from sqlalchemy.orm import Session

from connectors.ldap.errors import DirectoryConfigError, DirectoryError
from connectors.ldap.plan import Plan
from connectors.ldap.reconcile import CreateListener, MembershipState
from models.arrival import arrived
from models.base import utcnow
from models.db import SessionFactory, is_unavailable, transaction
from models.directory import runs
from models.directory.apply import apply_directory_plan, plan_team_retirements
from models.directory.people_import import ImportParts, PeopleImport
from models.directory.read import (
    Loaded,
    Progress,
    ReadTarget,
    load_changed,
    load_memberships,
    load_state,
    needs_groups,
    plan_full,
    plan_incremental,
    read_changes,
    read_groups,
)
from models.directory.safety import held_reason
from models.entities import DirectoryConnector, DirectorySyncRun
from models.enums import SyncKind, SyncRunStatus
from models.errors import DomainError
from models.settings import Settings
from models.sync_lock import Holder, SyncLock
from worker.directory_create_stream import CreateStream
from worker.lease_heartbeat import Heartbeat

log = structlog.get_logger(__name__)

DELETED = "deleted"  # the outcome of a sync whose connector was deleted while it ran


@dataclass
class SyncOutcome:
    run_id: str
    status: str
    summary: dict[str, int] = field(default_factory=dict)
    error: str = ""


def run_sync(
    sessions: SessionFactory,
    settings: Settings,
    *,
    connector_id: uuid.UUID,
    kind: SyncKind = SyncKind.FULL,
    dry_run: bool = False,
    trigger: str = "",
    progress: Progress | None = None,
    lock: SyncLock | None = None,
    holder: Holder | None = None,
) -> SyncOutcome:
    """One sync, start to end: whatever goes wrong, the run ends `failed`, with an alert. A
    database unavailable for now raises after (`_crashed`), for the task to retry the sync."""
    started = time.time()
    lock = lock or SyncLock(sessions)
    ttl = settings.directory_sync_lease_seconds
    name = runs.lease_name(connector_id)
    token = lock.acquire(name, ttl=ttl, holder=holder)
    try:
        with transaction(sessions) as session:
            connector = session.get(DirectoryConnector, connector_id)
            if connector is None:
                return deleted_outcome(None, runs.ConnectorDeleted("the connector was deleted"))
            if token is not None:
                # We hold the lease: a run still `running` here was left by a dead process.
                runs.reap_stale_runs(session, now=utcnow(), held=connector.id)
            if kind is SyncKind.INCREMENTAL and not connector.watermark:
                kind = SyncKind.FULL  # nothing to count changes from yet
            run = runs.start_run(
                session, connector=connector, kind=kind, dry_run=dry_run, trigger=trigger
            )
            if token is None:
                run.status = SyncRunStatus.SKIPPED
                run.error = "another sync of this connector is running"
                return SyncOutcome(str(run.id), run.status.value, error=run.error)
            try:
                target = ReadTarget.of(connector, settings)
            except DirectoryConfigError as exc:
                return _misconfigured(session, run, connector, exc)
            run_id = run.id
        # A directory change reaches odock-sync when a run reads it: its clock starts here.
        wanted = partial(_connector_exists, sessions, connector_id)
        with Heartbeat(lock, name, token, ttl=ttl, wanted=wanted) as heartbeat, arrived(started):
            try:
                sync = _Sync(sessions, target, heartbeat, run_id)
                return sync.run(kind, dry_run, progress or (lambda _n: None))
            except runs.ConnectorDeleted as exc:
                return deleted_outcome(run_id, exc)
            except BaseException as exc:
                outcome = _crashed(sessions, target, run_id, exc)
                if not isinstance(exc, Exception):
                    raise  # KeyboardInterrupt, SystemExit: recorded, and on their way
                return outcome
    finally:
        if token is not None:
            lock.release(name, token)


def _connector_exists(sessions: SessionFactory, connector_id: uuid.UUID) -> bool:
    """Asked at each of the lease's beats: a sync whose connector was deleted stops at the
    next page it reads, instead of reading the whole directory to find it out at the end."""
    with sessions() as session:
        found = session.get(DirectoryConnector, connector_id) is not None
        session.rollback()
    return found


def read_full_plan(
    sessions: SessionFactory,
    target: ReadTarget,
    *,
    progress: Progress,
    listener: CreateListener | None = None,
) -> Plan:
    """Read every entry while threads load the owned users and, with groups, the team
    memberships from the database, each on its own connection: the people are compared as
    soon as the users are in (entries read before wait, a few pages at most), and the
    memberships, needed only once every person is read, no longer hold that start back."""
    with ThreadPoolExecutor(max_workers=2) as pool, gc_paused():
        loading = pool.submit(_load_state, sessions, target)
        memberships = (
            pool.submit(_load_memberships, sessions, target) if target.wants_groups else None
        )
        return plan_full(
            target,
            loading=loading,
            memberships=memberships,
            progress=progress,
            listener=listener,
        )


def _load_state(sessions: SessionFactory, target: ReadTarget) -> Loaded:
    with sessions() as session:
        loaded = load_state(session, connector=target.connector)
        session.rollback()
    return loaded


def _load_memberships(sessions: SessionFactory, target: ReadTarget) -> MembershipState:
    with sessions() as session:
        state = load_memberships(session, connector=target.connector)
        session.rollback()
    return state


def _misconfigured(
    session: Session, run: DirectorySyncRun, connector: DirectoryConnector, exc: DirectoryError
) -> SyncOutcome:
    """The connector's settings make no search (a mapping stored before a check that now
    refuses it): the run fails at once, saying why, and the admins are told; nobody changes."""
    runs.fail_run(session, run=run, code=exc.code, message=exc.message, read=0, connector=connector)
    return SyncOutcome(str(run.id), SyncRunStatus.FAILED.value, error=exc.message)


def _crashed(
    sessions: SessionFactory, target: ReadTarget, run_id: uuid.UUID, exc: BaseException
) -> SyncOutcome:
    """An unexpected error: the run is failed with a one-line reason and the admins alerted.

    A database unavailable for now (a connection dropped or refused: models.db.is_unavailable)
    is failed as `database_unavailable`, without a traceback, and its error goes up after:
    the task retries it soon, as every task waiting out the database (worker.tasks.base). When
    even that cannot be written, the error goes up as it is and the run is reaped by the
    retry, or later, once its lease has expired.
    """
    code, message = _failure(exc)
    transient = code == runs.DATABASE_UNAVAILABLE
    if transient:
        log.warning("directory_sync.database_unavailable", run_id=str(run_id), error=message)
    else:
        log.error("directory_sync.crashed", run_id=str(run_id), error=message, exc_info=exc)
    try:
        with transaction(sessions) as session:
            run, connector = runs.locked_run(
                session, run_id=run_id, connector_id=target.connector.id
            )
            if run.status is SyncRunStatus.RUNNING:
                runs.fail_run(
                    session,
                    run=run,
                    code=code,
                    message=message,
                    read=run.read_count,
                    connector=connector,
                )
    except runs.ConnectorDeleted as deleted:
        return deleted_outcome(run_id, deleted)  # what failed was a write to what is gone
    except Exception:
        log.error("directory_sync.not_recorded", run_id=str(run_id), exc_info=not transient)
        raise exc from None
    if transient:
        raise exc from None  # recorded: the task's retry runs the sync again
    return SyncOutcome(str(run_id), SyncRunStatus.FAILED.value, error=message)


def _failure(exc: BaseException) -> tuple[str, str]:
    """The error code and one-line reason a failed run records."""
    if isinstance(exc, DirectoryError | DomainError):
        return exc.code, exc.message
    if is_unavailable(exc):
        return runs.DATABASE_UNAVAILABLE, runs.one_line(exc)
    return runs.CRASHED, runs.one_line(exc)


def deleted_outcome(run_id: uuid.UUID | None, exc: runs.ConnectorDeleted) -> SyncOutcome:
    """The connector was deleted while it synced (its delete is audited, its runs went with
    it): the sync stops, writing nothing, and is not tried again."""
    log.info("directory_sync.connector_deleted", run_id=str(run_id or ""), error=exc.message)
    return SyncOutcome(str(run_id or ""), DELETED, error=exc.message)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a hundred thousand acyclic objects are built:
    its full passes would rescan them all again and again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Sync:
    """One run of a sync that holds its lease: read, decide, apply or hold, record."""

    def __init__(
        self,
        sessions: SessionFactory,
        target: ReadTarget,
        heartbeat: Heartbeat,
        run_id: uuid.UUID,
    ) -> None:
        self.sessions = sessions
        self.target = target
        self.heartbeat = heartbeat
        self.run_id = run_id
        self.read = 0

    def run(self, kind: SyncKind, dry_run: bool, progress: Progress) -> SyncOutcome:
        def counted(n: int) -> None:
            self.read = n
            progress(n)
            if self.heartbeat.unwanted:  # between two pages: stop reading
                raise runs.ConnectorDeleted("the connector was deleted")
            if self.heartbeat.lost:  # another sync runs now: what this one reads is stale
                raise runs.LeaseLost.after(n)

        stream = self._stream_for(kind, dry_run)
        try:
            if kind is SyncKind.FULL:
                plan = read_full_plan(self.sessions, self.target, progress=counted, listener=stream)
            else:
                plan = self._plan_incremental(counted)
        except BaseException as exc:
            if stream is not None:
                stream.discard()
            if isinstance(exc, runs.ConnectorDeleted):
                raise  # nothing to record: its runs went with it
            if isinstance(exc, runs.LeaseLost):
                return self._stopped(exc)
            if not isinstance(exc, DirectoryError | DomainError):
                raise
            return self._failed(exc.code, exc.message)
        try:
            with gc_paused():
                return self._decide(plan, dry_run, stream)
        finally:
            if stream is not None:
                stream.discard()  # nothing left to do once its transaction was handed over

    def _plan_incremental(self, progress: Progress) -> Plan:
        with gc_paused():
            changes = read_changes(self.target, progress)
        with self.sessions() as session:
            known = load_changed(session, target=self.target, changes=changes)
            session.rollback()
        if needs_groups(target=self.target, changes=changes, known=known):
            with gc_paused():  # no transaction open while the directory is read
                read_groups(self.target, changes)
        with self.sessions() as session, gc_paused():
            plan = plan_incremental(session, target=self.target, changes=changes, known=known)
            session.rollback()
        return plan

    def _failed(self, code: str, message: str) -> SyncOutcome:
        with transaction(self.sessions) as session:
            run, connector = runs.locked_run(
                session, run_id=self.run_id, connector_id=self.target.connector.id
            )
            runs.ensure_running(run)
            runs.fail_run(
                session, run=run, code=code, message=message, read=self.read, connector=connector
            )
        return SyncOutcome(str(self.run_id), SyncRunStatus.FAILED.value, error=message)

    def _stopped(self, stop: runs.LeaseLost) -> SyncOutcome:
        with transaction(self.sessions) as session:
            run, connector = runs.locked_run(
                session, run_id=self.run_id, connector_id=self.target.connector.id
            )
            runs.stop_run(session, run=run, connector=connector, stop=stop, read=self.read)
        return SyncOutcome(str(self.run_id), SyncRunStatus.FAILED.value, error=stop.message)

    def _stream_for(self, kind: SyncKind, dry_run: bool) -> CreateStream | None:
        """A full sync that will apply may write its creates while it reads (PostgreSQL
        only)."""
        if kind is not SyncKind.FULL or dry_run or self.target.settings.is_sqlite:
            return None
        return CreateStream(self.sessions, self.target.connector.id)

    def _decide(self, plan: Plan, dry_run: bool, stream: CreateStream | None) -> SyncOutcome:
        streamed = stream is not None and stream.started
        with transaction(self.sessions) as session:
            run, connector = self._locked(session)
            plan_team_retirements(session, connector=connector, plan=plan)
            if dry_run:
                runs.complete_run(
                    session,
                    run=run,
                    connector=connector,
                    plan=plan,
                    applied=None,
                    status=SyncRunStatus.PLANNED,
                )
                return SyncOutcome(str(self.run_id), run.status.value, plan.summary(), run.error)
            # Counted here, where the streamed creates (not committed) are not visible.
            reason = held_reason(session, connector=connector, plan=plan)
            if reason:
                if stream is not None:
                    stream.discard()
                runs.quarantine_run(session, run=run, connector=connector, plan=plan, reason=reason)
                return SyncOutcome(str(self.run_id), run.status.value, plan.summary(), reason)
            if not streamed:
                return _apply(session, run, connector, plan)
        assert stream is not None
        written = stream.finish()
        try:
            run, connector = self._locked(written.session)
            outcome = _apply(written.session, run, connector, plan, written.people)
            written.commit()
        finally:
            written.close()
        return outcome

    def _locked(self, session: Session) -> tuple[DirectorySyncRun, DirectoryConnector]:
        """The run, locked and still ours, and its connector; refused once the lease is lost."""
        run, connector = runs.locked_run(
            session, run_id=self.run_id, connector_id=self.target.connector.id
        )
        runs.ensure_running(run)
        self.heartbeat.check()
        return run, connector


def _apply(
    session: Session,
    run: DirectorySyncRun,
    connector: DirectoryConnector,
    plan: Plan,
    people: PeopleImport | ImportParts | None = None,
) -> SyncOutcome:
    applied = apply_directory_plan(
        session, connector=connector, plan=plan, actor=runs.ldap_actor(connector), people=people
    )
    runs.complete_run(
        session,
        run=run,
        connector=connector,
        plan=plan,
        applied=applied,
        status=SyncRunStatus.SUCCEEDED,
    )
    return SyncOutcome(str(run.id), run.status.value, plan.summary(), run.error)
