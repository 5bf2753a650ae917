"""Running one directory sync: lock, read the directory, plan, check safety, apply, record.

This procedure owns its transactions because it reads a directory between them. Only a bulk
import on PostgreSQL keeps one open while it reads, to write its creates meanwhile
(directory_stream); it commits nothing before the plan is complete and checked. Nobody is
revoked unless every page was read and every entry had its stable id; a plan over the
threshold waits for an admin.
"""

from __future__ import annotations

import gc
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from sqlalchemy.orm import Session

from connectors.ldap.client import DirectoryClient, SearchStats
from connectors.ldap.errors import DirectoryError, DirectoryIncomplete
from connectors.ldap.mapping import (
    ISO_FORMAT,
    AttributeMapping,
    EntryProblem,
    Group,
    Person,
    and_filter,
    changed_since_filter,
    later_change,
    map_group,
    map_person,
    normalize_dn,
)
from connectors.ldap.reconcile import (
    Known,
    MembershipState,
    Plan,
    Reconciler,
    Unlinked,
    recheck,
)
from models.actions import directory_sync as sync_ops
from models.actions.directory_connectors import connector_mapping, server_config
from models.actions.directory_import import PeopleImport
from models.actor import Actor
from models.arrival import arrived
from models.base import utcnow
from models.db import SessionFactory, transaction
from models.directory_safety import held_reason, policy_of
from models.directory_stream import CreateStream
from models.entities import DirectoryConnector, DirectorySyncRun
from models.enums import Role, SyncKind, SyncRunStatus
from models.errors import Conflict, DomainError, Unavailable
from models.queries import directory as queries
from models.settings import Settings
from models.sync_lock import SyncLock

log = structlog.get_logger(__name__)

CRASHED = "internal_error"
GROUP_PAGE_SIZE = 5
MAX_WAITING = 5000  # mapped entries held while the owned users are still loading
Progress = Callable[[int], None]


@dataclass
class SyncOutcome:
    run_id: str
    status: str
    summary: dict[str, int] = field(default_factory=dict)
    error: str = ""


@dataclass
class _Target:
    """What the read needs from the connector, copied out of the session."""

    connector: DirectoryConnector
    mapping: AttributeMapping
    settings: Settings
    now: str = field(default_factory=lambda: utcnow().strftime(ISO_FORMAT))
    heartbeat: Heartbeat | None = None

    def check_lease(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.check()

    @property
    def group_base(self) -> str:
        return self.connector.group_base_dn or self.connector.base_dn

    @property
    def wants_groups(self) -> bool:
        return bool(self.connector.group_teams or self.connector.group_roles)


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
) -> SyncOutcome:
    """One sync, start to end: whatever goes wrong, the run ends `failed`, with an alert."""
    started = time.time()
    lock = lock or SyncLock(sessions)
    ttl = settings.directory_sync_lease_seconds
    name = sync_ops.lease_name(connector_id)
    token = lock.acquire(name, ttl=ttl)
    try:
        with transaction(sessions) as session:
            connector = session.get_one(DirectoryConnector, connector_id)
            if token is not None:
                # We hold the lease: a run still `running` here was left by a dead process.
                sync_ops.reap_stale_runs(session, now=utcnow(), held=connector.id)
            if kind is SyncKind.INCREMENTAL and not connector.watermark:
                kind = SyncKind.FULL  # nothing to count changes from yet
            run = sync_ops.start_run(
                session, connector=connector, kind=kind, dry_run=dry_run, trigger=trigger
            )
            if token is None:
                run.status = SyncRunStatus.SKIPPED
                run.error = "another sync of this connector is running"
                return SyncOutcome(str(run.id), run.status.value, error=run.error)
            target = _Target(connector, connector_mapping(connector), settings)
            run_id = run.id
        # A directory change reaches odock-sync when a run reads it: its clock starts here.
        with Heartbeat(lock, name, token, ttl=ttl) as heartbeat, arrived(started):
            target.heartbeat = heartbeat
            try:
                return _run(sessions, target, run_id, kind, dry_run, progress or (lambda _n: None))
            except BaseException as exc:
                outcome = _crashed(sessions, target, run_id, exc)
                if not isinstance(exc, Exception):
                    raise  # KeyboardInterrupt, SystemExit: recorded, and on their way
                return outcome
    finally:
        if token is not None:
            lock.release(name, token)


def _crashed(
    sessions: SessionFactory, target: _Target, run_id: uuid.UUID, exc: BaseException
) -> SyncOutcome:
    """An unexpected error: the run is failed with a one-line reason and the admins alerted.

    When even that cannot be written (the database is down), the error goes up as it is and
    the run is reaped later, once its lease has expired.
    """
    code, message = CRASHED, one_line(exc)
    if isinstance(exc, DirectoryError | DomainError):
        code, message = exc.code, exc.message
    log.error("directory_sync.crashed", run_id=str(run_id), error=message, exc_info=exc)
    try:
        with transaction(sessions) as session:
            run = session.get_one(DirectorySyncRun, run_id, with_for_update=True)
            if run.status is SyncRunStatus.RUNNING:
                connector = session.get_one(DirectoryConnector, target.connector.id)
                sync_ops.fail_run(
                    session,
                    run=run,
                    code=code,
                    message=message,
                    read=run.read_count,
                    connector=connector,
                )
    except Exception:
        log.error("directory_sync.not_recorded", run_id=str(run_id), exc_info=True)
        raise exc from None
    return SyncOutcome(str(run_id), SyncRunStatus.FAILED.value, error=message)


def one_line(exc: BaseException) -> str:
    """The error's type and the first line of its message, short enough for a run's list."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


class Heartbeat:
    """Renews a lease while its holder works, from a thread; notes when the lease was lost."""

    def __init__(self, lock: SyncLock, name: str, token: str, *, ttl: float) -> None:
        self.lock = lock
        self.name = name
        self.token = token
        self.ttl = ttl
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="sync-lease", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not self.lock.renew(self.name, self.token, ttl=self.ttl):
                    self.lost = True
                    return
            except Exception:  # a database hiccup: try again at the next beat
                log.warning("directory_sync.lease_not_renewed", lease=self.name, exc_info=True)

    def check(self) -> None:
        """Refuse to write once the lease is lost: another sync may be running now."""
        if self.lost:
            raise SyncInterrupted("the sync lost its lease (not renewed in time); nothing applied")


class SyncInterrupted(DomainError):
    code = sync_ops.INTERRUPTED


class SyncRunning(Conflict):
    """The connector's lease is held by another sync: try again once it has finished."""


def apply_approval(
    sessions: SessionFactory,
    settings: Settings,
    *,
    run_id: uuid.UUID,
    actor: Actor,
    lock: SyncLock | None = None,
) -> SyncOutcome:
    """Carry out a recorded approval: re-read the directory and apply what still holds.

    It holds the connector's lease, renewed by a heartbeat, as a sync does; writes nothing once
    that lease is lost. Refused (the run waits again, with the reason) when a later sync of
    the connector has completed or the directory cannot be read; the held changes the current
    read no longer calls for are dropped and reported. Raises SyncRunning while a sync holds
    the lease.
    """
    with transaction(sessions) as session:
        run = session.get(DirectorySyncRun, run_id)
        if run is None:  # its connector was deleted since
            return SyncOutcome(str(run_id), "not_found", error="the run no longer exists")
        if run.status is not SyncRunStatus.APPROVING:  # applied or refused already
            summary = (run.plan or {}).get("summary", {})
            return SyncOutcome(str(run_id), run.status.value, summary, run.error)
        connector = session.get_one(DirectoryConnector, run.connector_id)
        target = _Target(connector, connector_mapping(connector), settings)
        session.expunge(connector)
    lock = lock or SyncLock(sessions)
    ttl = settings.directory_sync_lease_seconds
    name = sync_ops.lease_name(target.connector.id)
    token = lock.acquire(name, ttl=ttl)
    if token is None:
        raise SyncRunning("a sync of this connector is running; the approval waits for it")
    try:
        with Heartbeat(lock, name, token, ttl=ttl) as heartbeat:
            target.heartbeat = heartbeat
            try:
                return _apply_approval(sessions, target, run_id, actor)
            except BaseException as exc:
                outcome = _approval_refused(sessions, run_id, exc)
                if not isinstance(exc, Exception):
                    raise
                return outcome
    finally:
        lock.release(name, token)


def _apply_approval(
    sessions: SessionFactory, target: _Target, run_id: uuid.UUID, actor: Actor
) -> SyncOutcome:
    with transaction(sessions) as session:  # outdated already: no need to read
        sync_ops.check_approvable(session, run=session.get_one(DirectorySyncRun, run_id))
    try:
        with _gc_paused():
            current = _plan_full(sessions, target, lambda _n: None, None)
    except DirectoryError as exc:
        raise Unavailable(
            f"the directory could not be read to re-check the plan: {exc.message}",
            error_code=exc.code,
        ) from None
    with transaction(sessions) as session:
        run = session.get_one(DirectorySyncRun, run_id, with_for_update=True)
        target.check_lease()
        connector = session.get_one(DirectoryConnector, run.connector_id)
        sync_ops.plan_team_retirements(session, connector=connector, plan=current)
        sync_ops.check_approvable(session, run=run, statuses=(SyncRunStatus.APPROVING,))
        assert run.plan is not None
        kept, dropped = recheck(Plan.from_dict(run.plan), current)
        sync_ops.approve_run(session, run=run, actor=actor, plan=kept, dropped=dropped)
        return SyncOutcome(str(run_id), run.status.value, kept.summary(), run.error)


def _approval_refused(
    sessions: SessionFactory, run_id: uuid.UUID, exc: BaseException
) -> SyncOutcome:
    """Nothing of the approval was applied: the run waits again, saying why."""
    code, message = CRASHED, one_line(exc)
    if isinstance(exc, DirectoryError):
        code, message = exc.code, exc.message
    elif isinstance(exc, DomainError):
        code, message = str(exc.details.get("error_code", exc.code)), exc.message
    log.warning("directory_sync.approval_refused", run_id=str(run_id), error=message)
    with transaction(sessions) as session:
        run = session.get_one(DirectorySyncRun, run_id, with_for_update=True)
        if run.status is SyncRunStatus.APPROVING:
            sync_ops.refuse_approval(session, run=run, code=code, message=message)
        return SyncOutcome(str(run_id), run.status.value, error=message)


def _run(
    sessions: SessionFactory,
    target: _Target,
    run_id: uuid.UUID,
    kind: SyncKind,
    dry_run: bool,
    progress: Progress,
) -> SyncOutcome:
    read = [0]

    def counted(n: int) -> None:
        read[0] = n
        progress(n)

    stream = _stream_for(sessions, target, kind, dry_run)
    try:
        with _gc_paused():
            if kind is SyncKind.FULL:
                plan = _plan_full(sessions, target, counted, stream)
            else:
                plan = _plan_incremental(sessions, target, counted)
    except BaseException as exc:
        if stream is not None:
            stream.discard()
        if not isinstance(exc, DirectoryError | DomainError):
            raise
        code = exc.code
        message = exc.message
        with transaction(sessions) as session:
            run = session.get_one(DirectorySyncRun, run_id, with_for_update=True)
            _ensure_running(run)
            connector = session.get_one(DirectoryConnector, target.connector.id)
            sync_ops.fail_run(
                session, run=run, code=code, message=message, read=read[0], connector=connector
            )
        return SyncOutcome(str(run_id), SyncRunStatus.FAILED.value, error=message)
    try:
        with _gc_paused():
            return _decide(sessions, target, run_id, plan, dry_run, stream)
    finally:
        if stream is not None:
            stream.discard()  # nothing left to do once its transaction was handed over


def _ensure_running(run: DirectorySyncRun) -> None:
    """A run a reaper ended (its lease had expired) takes no more writes from this sync."""
    if run.status is not SyncRunStatus.RUNNING:
        raise SyncInterrupted(f"the run was ended meanwhile ({run.status}: {run.error})")


def _stream_for(
    sessions: SessionFactory, target: _Target, kind: SyncKind, dry_run: bool
) -> CreateStream | None:
    """A full sync that will apply may write its creates while it reads (PostgreSQL only)."""
    if kind is not SyncKind.FULL or dry_run or target.settings.is_sqlite:
        return None
    return CreateStream(sessions, target.connector.id)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a hundred thousand acyclic objects are built:
    its full passes would rescan them all again and again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _decide(
    sessions: SessionFactory,
    target: _Target,
    run_id: uuid.UUID,
    plan: Plan,
    dry_run: bool,
    stream: CreateStream | None = None,
) -> SyncOutcome:
    streamed = stream is not None and stream.started
    with transaction(sessions) as session:
        run = session.get_one(DirectorySyncRun, run_id, with_for_update=True)
        _ensure_running(run)
        target.check_lease()
        connector = session.get_one(DirectoryConnector, target.connector.id)
        sync_ops.plan_team_retirements(session, connector=connector, plan=plan)
        if dry_run:
            sync_ops.complete_run(
                session,
                run=run,
                connector=connector,
                plan=plan,
                applied=None,
                status=SyncRunStatus.PLANNED,
            )
            return SyncOutcome(str(run_id), run.status.value, plan.summary(), run.error)
        # Counted here, where the streamed creates (not committed) are not visible.
        reason = held_reason(session, connector=connector, plan=plan)
        if reason:
            if stream is not None:
                stream.discard()
            sync_ops.quarantine_run(session, run=run, connector=connector, plan=plan, reason=reason)
            return SyncOutcome(str(run_id), run.status.value, plan.summary(), reason)
        if not streamed:
            return _apply(session, run, connector, plan)
    assert stream is not None
    applying, people = stream.finish()
    with applying:
        try:
            run = applying.get_one(DirectorySyncRun, run_id, with_for_update=True)
            _ensure_running(run)
            target.check_lease()
            connector = applying.get_one(DirectoryConnector, target.connector.id)
            outcome = _apply(applying, run, connector, plan, people)
            applying.commit()
        except BaseException:
            applying.rollback()
            raise
    return outcome


def _apply(
    session: Session,
    run: DirectorySyncRun,
    connector: DirectoryConnector,
    plan: Plan,
    people: PeopleImport | None = None,
) -> SyncOutcome:
    applied = sync_ops.apply_directory_plan(
        session, connector=connector, plan=plan, actor=sync_ops.ldap_actor(connector), people=people
    )
    sync_ops.complete_run(
        session,
        run=run,
        connector=connector,
        plan=plan,
        applied=applied,
        status=SyncRunStatus.SUCCEEDED,
    )
    return SyncOutcome(str(run.id), run.status.value, plan.summary(), run.error)


def _load_state(
    sessions: SessionFactory, connector: DirectoryConnector, wants_groups: bool
) -> tuple[dict[str, Known], dict[str, Unlinked], MembershipState | None]:
    with sessions() as session:
        known = queries.load_known(session, connector)
        unlinked = queries.load_unlinked_by_email(session, connector)
        state = queries.load_membership_state(session, connector) if wants_groups else None
        session.rollback()
    return known, unlinked, state


def _plan_full(
    sessions: SessionFactory, target: _Target, progress: Progress, stream: CreateStream | None
) -> Plan:
    """Read every entry; the owned users load from the database meanwhile, in a thread."""
    connector = target.connector
    watermark = connector.watermark
    config = server_config(connector, target.settings)
    waiting: list[Person | EntryProblem] = []
    reconciler: Reconciler | None = None
    state: MembershipState | None = None
    read = 0

    def feed(item: Person | EntryProblem) -> None:
        assert reconciler is not None
        if isinstance(item, EntryProblem):
            reconciler.add_problem(item)
        else:
            reconciler.add(item)

    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = pool.submit(_load_state, sessions, connector, target.wants_groups)
        with DirectoryClient(config) as client:
            stats = SearchStats()
            for page in client.paged_search(
                connector.base_dn,
                target.mapping.user_filter,
                target.mapping.user_attributes(),
                page_size=connector.page_size,
                stats=stats,
            ):
                for dn, attrs in page:
                    item = _map(dn, attrs, target.mapping)
                    if isinstance(item, Person):
                        watermark = later_change(watermark, item.change, target.mapping.change_kind)
                    if reconciler is None:
                        waiting.append(item)
                    else:
                        feed(item)
                read += len(page)
                # Waiting entries are bounded: past a few pages, wait for the database.
                if reconciler is None and (loading.done() or len(waiting) >= MAX_WAITING):
                    reconciler, state = _start(loading.result(), target, stream)
                    for item in waiting:
                        feed(item)
                    waiting.clear()
                progress(read)
            if reconciler is None:
                reconciler, state = _start(loading.result(), target, stream)
                for item in waiting:
                    feed(item)
                waiting.clear()
            reconciler.finish_people(complete=stats.complete, full=True)
            if state is not None:
                groups, watermark = _read_groups(client, target, watermark)
                reconciler.plan_groups(
                    groups,
                    group_teams=connector.group_teams,
                    group_roles=connector.group_roles,
                    state=state,
                    dn_to_id=reconciler.dn_to_id,
                    role_rank=_role_rank,
                )
    reconciler.plan.watermark = watermark
    return reconciler.plan


def _start(
    loaded: tuple[dict[str, Known], dict[str, Unlinked], MembershipState | None],
    target: _Target,
    stream: CreateStream | None,
) -> tuple[Reconciler, MembershipState | None]:
    known, unlinked, state = loaded
    reconciler = Reconciler(
        known,
        unlinked,
        kind=SyncKind.FULL.value,
        track_dns=target.wants_groups,
        listener=stream,
        now=target.now,
        rehire=policy_of(target.connector).rehire,
    )
    return reconciler, state


def _map(
    dn: str, attrs: dict[str, list[bytes]], mapping: AttributeMapping
) -> Person | EntryProblem:
    try:
        return map_person(dn, attrs, mapping)
    except EntryProblem as problem:
        return problem


def _plan_incremental(sessions: SessionFactory, target: _Target, progress: Progress) -> Plan:
    """Entries changed since the watermark, and memberships of groups changed since then."""
    connector = target.connector
    mapping = target.mapping
    since = changed_since_filter(mapping, connector.watermark)
    watermark = connector.watermark
    people: list[Person] = []
    problems: list[EntryProblem] = []
    config = server_config(connector, target.settings)
    with DirectoryClient(config) as client:
        for page in client.paged_search(
            connector.base_dn,
            and_filter(mapping.user_filter, since),
            mapping.user_attributes(),
            page_size=connector.page_size,
        ):
            for dn, attrs in page:
                try:
                    person = map_person(dn, attrs, mapping)
                except EntryProblem as exc:
                    problems.append(exc)
                    continue
                people.append(person)
                watermark = later_change(watermark, person.change, mapping.change_kind)
            progress(len(people) + len(problems))
        # Strictly after: the group that set the watermark would otherwise look changed at
        # every run, and every incremental sync would recompute all memberships and roles.
        group_since = changed_since_filter(mapping, connector.watermark, after=True)
        groups_changed = target.wants_groups and _any_group_changed(client, target, group_since)
        groups: dict[str, Group] = {}
        if groups_changed:
            groups, watermark = _read_groups(client, target, watermark)
    with sessions() as session:
        known = queries.load_known(session, connector, [p.external_id for p in people])
        unknown = any(p.external_id not in known for p in people)
        unlinked = queries.load_unlinked_by_email(session, connector) if unknown else {}
        every = queries.load_known(session, connector) if groups_changed else None
        state = queries.load_membership_state(session, connector) if groups_changed else None
        ended = queries.load_known(session, connector, ended_by=target.now)
        new_emails = [p.email for p in people if p.external_id not in known]
        owned = queries.load_owned_by_email(session, connector, new_emails)
        session.rollback()
    reconciler = Reconciler(
        known,
        unlinked,
        kind=SyncKind.INCREMENTAL.value,
        now=target.now,
        rehire=policy_of(connector).rehire,
        owned_by_email=owned,
    )
    for unreadable in problems:
        reconciler.add_problem(unreadable)
    for person in people:
        reconciler.add(person)
    reconciler.finish_people(complete=True, full=False)  # deletions wait for a full sync
    reconciler.revoke_ended(ended)
    if every is not None and state is not None:
        dn_to_id = {normalize_dn(k.dn): ext for ext, k in every.items() if k.dn}
        dn_to_id.update(reconciler.dn_to_id)
        reconciler.plan_groups(
            groups,
            group_teams=connector.group_teams,
            group_roles=connector.group_roles,
            state=state,
            dn_to_id=dn_to_id,
            role_rank=_role_rank,
            known_for_roles=every,
        )
    reconciler.plan.watermark = watermark
    return reconciler.plan


def _read_groups(
    client: DirectoryClient, target: _Target, watermark: str
) -> tuple[dict[str, Group], str]:
    groups: dict[str, Group] = {}
    for page in client.paged_search(
        target.group_base,
        target.mapping.group_filter,
        target.mapping.group_attributes(),
        # A group can list a hundred thousand members: a few groups per page keep the raw
        # entries (two pages in flight) small.
        page_size=min(GROUP_PAGE_SIZE, target.connector.page_size),
    ):
        for dn, attrs in page:
            try:
                group = map_group(dn, attrs, target.mapping)
            except EntryProblem as problem:
                # A group we cannot read would look like a group nobody is in any more.
                raise DirectoryIncomplete(f"group {problem.dn}: {problem.message}") from None
            groups[group.key] = group
            watermark = later_change(watermark, group.change, target.mapping.change_kind)
    return groups, watermark


def _any_group_changed(client: DirectoryClient, target: _Target, since: str) -> bool:
    filterstr = and_filter(target.mapping.group_filter, since)
    for page in client.paged_search(
        target.group_base, filterstr, ["1.1"], page_size=target.connector.page_size
    ):
        if page:
            return True
    return False


# --- the test action ----------------------------------------------------------------------


TEST_CONNECT_TIMEOUT = 3.0
TEST_SEARCH_TIMEOUT = 5.0


def test_connection(
    connector: DirectoryConnector, settings: Settings, *, username: str = ""
) -> dict[str, Any]:
    """Bind, count the matching people and groups, and map one person; change nothing."""
    from connectors.ldap.mapping import escape_filter_value

    mapping = connector_mapping(connector)
    result: dict[str, Any] = {"ok": False}
    try:
        config = server_config(connector, settings)
        # The test runs inside a web request: short timeouts whatever a sync may take.
        config = replace(
            config,
            connect_timeout=min(config.connect_timeout, TEST_CONNECT_TIMEOUT),
            search_timeout=min(config.search_timeout, TEST_SEARCH_TIMEOUT),
        )
        with DirectoryClient(config) as client:
            result["server"] = client.url
            result["users"] = client.count(
                connector.base_dn, mapping.user_filter, page_size=connector.page_size
            )
            result["groups"] = client.count(
                connector.group_base_dn or connector.base_dn,
                mapping.group_filter,
                page_size=connector.page_size,
            )
            filterstr = mapping.user_filter
            if username:
                term = f"({mapping.username}={escape_filter_value(username)})"
                filterstr = and_filter(mapping.user_filter, term)
            result["sample"] = sample = _sample(client, connector, mapping, filterstr)
    except DirectoryError as exc:
        result["error_code"] = exc.code
        result["error"] = exc.message
        return result
    result.update(_verdict(connector, mapping, result["users"], sample, username))
    return result


def _verdict(
    connector: DirectoryConnector,
    mapping: AttributeMapping,
    users: int,
    sample: dict[str, Any] | None,
    username: str,
) -> dict[str, Any]:
    """ok only when the read found people and the sample maps; otherwise what was found."""
    where = f"under {connector.base_dn} with the user filter {mapping.user_filter}"
    if not users:
        return {
            "ok": False,
            "error_code": "no_people",
            "error": f"no entry {where} (preset {connector.preset}): "
            "check the base DN, the filter and the preset",
        }
    if sample is None:
        return {
            "ok": False,
            "error_code": "no_sample",
            "error": f"{users} entries {where}, none with {mapping.username}={username}",
        }
    if "error" in sample:
        return {
            "ok": False,
            "error_code": "unmappable",
            "error": f"{users} entries {where}, but {sample['dn']} does not map with the "
            f"preset {connector.preset}: {sample['error']}",
        }
    return {"ok": True}


def _sample(
    client: DirectoryClient,
    connector: DirectoryConnector,
    mapping: AttributeMapping,
    filterstr: str,
) -> dict[str, Any] | None:
    for page in client.paged_search(
        connector.base_dn, filterstr, mapping.user_attributes(), page_size=1
    ):
        for dn, attrs in page:
            try:
                person = map_person(dn, attrs, mapping)
            except EntryProblem as exc:
                return {"dn": dn, "error": exc.message}
            return {
                "dn": person.dn,
                "external_id": person.external_id,
                "username": person.username,
                "email": person.email,
                "name": person.name,
                "disabled": person.disabled,
            }
        break
    return None


def _role_rank(role: str) -> int:
    return Role(role).rank
