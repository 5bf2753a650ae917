"""Running one directory sync: lock, read the directory, plan, check safety, apply, record.

This procedure owns its transactions because it reads a directory between them. Only a bulk
import on PostgreSQL keeps one open while it reads, to write its creates meanwhile
(directory_stream); it commits nothing before the plan is complete and checked. Nobody is
revoked unless every page was read and every entry had its stable id; a plan over the
threshold waits for an admin.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.orm import Session

from connectors.ldap.client import DirectoryClient, SearchStats
from connectors.ldap.errors import DirectoryError, DirectoryIncomplete
from connectors.ldap.mapping import (
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
from connectors.ldap.reconcile import Known, MembershipState, Plan, Reconciler, Unlinked
from models.actions import directory_sync as sync_ops
from models.actions.directory_connectors import connector_mapping, server_config
from models.actions.directory_import import PeopleImport
from models.arrival import arrived
from models.db import SessionFactory, transaction
from models.directory_stream import CreateStream
from models.entities import DirectoryConnector, DirectorySyncRun, Organisation
from models.enums import Role, SyncKind, SyncRunStatus
from models.errors import DomainError
from models.queries import directory as queries
from models.settings import Settings
from models.sync_lock import SyncLock, sync_lock

LOCK_TTL_SECONDS = 3600
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
    started = time.time()
    lock = lock or sync_lock(settings, sessions)
    lock_name = f"directory-sync:{connector_id}"
    token = lock.acquire(lock_name, ttl=LOCK_TTL_SECONDS)
    try:
        with transaction(sessions) as session:
            connector = session.get_one(DirectoryConnector, connector_id)
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
        with arrived(started):
            return _run(sessions, target, run_id, kind, dry_run, progress or (lambda _n: None))
    finally:
        if token is not None:
            lock.release(lock_name, token)


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
            run = session.get_one(DirectorySyncRun, run_id)
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
        run = session.get_one(DirectorySyncRun, run_id)
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
        organisation = session.get_one(Organisation, connector.organisation_id)
        # Counted here, where the streamed creates (not committed) are not visible.
        reason = sync_ops.exceeds_threshold(
            session, organisation=organisation, connector=connector, plan=plan
        )
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
            run = applying.get_one(DirectorySyncRun, run_id)
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
        groups_changed = target.wants_groups and _any_group_changed(client, target, since)
        groups: dict[str, Group] = {}
        if groups_changed:
            groups, watermark = _read_groups(client, target, watermark)
    with sessions() as session:
        known = queries.load_known(session, connector, [p.external_id for p in people])
        unknown = any(p.external_id not in known for p in people)
        unlinked = queries.load_unlinked_by_email(session, connector) if unknown else {}
        every = queries.load_known(session, connector) if groups_changed else None
        state = queries.load_membership_state(session, connector) if groups_changed else None
        session.rollback()
    reconciler = Reconciler(known, unlinked, kind=SyncKind.INCREMENTAL.value)
    for unreadable in problems:
        reconciler.add_problem(unreadable)
    for person in people:
        reconciler.add(person)
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
        page_size=target.connector.page_size,
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
            result["sample"] = _sample(client, connector, mapping, filterstr)
            result["ok"] = True
    except DirectoryError as exc:
        result["error_code"] = exc.code
        result["error"] = exc.message
    return result


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
