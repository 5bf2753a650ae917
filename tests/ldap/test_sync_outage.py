"""A sync whose PostgreSQL connection is dropped mid-run (a backend terminated, or the
database restarting) still ends: its run is failed with a reason or its task's retry takes
its lease back and completes the sync, no run stays `running`, the lease is free afterwards,
the next sync runs, and nothing is applied twice.

A retry is the task's body run again under the same task id with one more retry counted;
here run_sync is called again with that attempt's `Holder`, as worker.tasks.directory does.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from models.db import is_unavailable
from models.directory.approvals import request_approval
from models.directory.runs import DATABASE_UNAVAILABLE, INTERRUPTED, lease_name
from models.entities import AuditEvent, DirectorySyncRun
from models.enums import SyncRunStatus
from models.sync_lock import Holder, live_leases
from tests.ldap.conftest import connector_runs, linked_users
from tests.support import factories
from tests.support.db_outage import refusing_connections, terminate_every_backend
from worker import directory_approval
from worker.directory_approval import apply_approval
from worker.directory_sync import read_full_plan, run_sync

PEOPLE = {"alice", "bob", "carol", "dave"}
FIRST = Holder.attempt("task-1", 0)
RETRY = Holder.attempt("task-1", 1)


@pytest.fixture(autouse=True)
def _postgresql(engine: Engine, dropping_connections: None) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a backend terminated mid-run is PostgreSQL's")


def _sync(sessions, settings, connector, holder: Holder, progress: Any = None):
    return run_sync(
        sessions,
        settings,
        connector_id=connector.id,
        trigger="test",
        holder=holder,
        progress=progress,
    )


def _created(sessions, connector) -> Counter[str]:
    """How often each person was recorded created, by email (one event per person or per
    batch of them)."""
    with sessions() as s:
        events = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "user.created",
                AuditEvent.organisation_id == connector.organisation_id,
            )
        )
        counted: Counter[str] = Counter()
        for event in events:
            after = event.after or {}
            people = after.get("users") or [after]
            counted.update(person["email"].split("@")[0] for person in people)
        s.rollback()
        return counted


def _lease_held(sessions, settings, connector) -> bool:
    from models.base import utcnow

    with sessions() as s:
        held = bool(live_leases(s, [lease_name(connector.id)], now=utcnow()))
        s.rollback()
        return held


def _ended_cleanly(sessions, settings, connector) -> None:
    """No run left `running`, the lease free, the next sync run (not skipped), each person
    created once."""
    runs = connector_runs(sessions, connector)
    assert all(run.status is not SyncRunStatus.RUNNING for run in runs)
    assert not _lease_held(sessions, settings, connector)
    following = _sync(sessions, settings, connector, holder=Holder.attempt("the-next-task", 0))
    assert following.status == SyncRunStatus.SUCCEEDED.value, following.error
    assert set(linked_users(sessions, connector)) == PEOPLE
    created = _created(sessions, connector)
    assert created == Counter(PEOPLE)


def test_a_sync_whose_backends_are_terminated_mid_read_ends_failed_or_by_its_retry(
    make_connector, sessions, settings, engine
):
    """Every backend of the database is terminated while the sync reads, those it pools
    included: the run succeeds on fresh connections when it held none at that moment, or the
    error goes up (the task retries) after the run is failed `database_unavailable` with its
    one-line reason on a fresh connection, or, when that write meets a terminated connection
    too, left for the retry, which reaps it (`sync_interrupted`); the retry completes the
    sync."""
    connector = make_connector()
    terminated: list[int] = []

    def terminate_once(n: int) -> None:
        if not terminated:
            terminated.append(n)
            terminate_every_backend(engine)

    try:
        outcome = _sync(sessions, settings, connector, holder=FIRST, progress=terminate_once)
    except DBAPIError as error:
        assert is_unavailable(error)  # what the task retries
        engine.dispose()  # the test's own reads below need no terminated connection
        retried = _sync(sessions, settings, connector, holder=RETRY)
        assert retried.status == SyncRunStatus.SUCCEEDED.value, retried.error
        dropped, _retry = connector_runs(sessions, connector)
        assert dropped.status is SyncRunStatus.FAILED
        assert dropped.error_code in (DATABASE_UNAVAILABLE, INTERRUPTED)
        if dropped.error_code == DATABASE_UNAVAILABLE:
            assert dropped.error.startswith("OperationalError") and "\n" not in dropped.error
    else:
        # No connection was in use when the backends were terminated: the pool saw each
        # one's goodbye at checkout and connected afresh (models.db), the run met none.
        engine.dispose()
        (run,) = connector_runs(sessions, connector)
        assert outcome.status == SyncRunStatus.SUCCEEDED.value, outcome.error
        assert run.status is SyncRunStatus.SUCCEEDED
    assert terminated
    _ended_cleanly(sessions, settings, connector)


def test_a_sync_the_database_drops_mid_run_is_taken_over_by_its_retry(
    make_connector, sessions, settings, engine
):
    connector = make_connector()
    outage = refusing_connections(settings, engine)

    restarted: list[int] = []

    def restart_database(n: int) -> None:
        if not restarted:
            restarted.append(n)
            outage.__enter__()

    try:
        with pytest.raises(Exception) as raised:
            _sync(sessions, settings, connector, holder=FIRST, progress=restart_database)
    finally:
        if restarted:
            outage.__exit__(None, None, None)
    assert restarted
    assert is_unavailable(raised.value)  # what the task retries
    (dropped,) = connector_runs(sessions, connector)
    assert dropped.status is SyncRunStatus.RUNNING  # nothing could be written meanwhile
    assert _lease_held(sessions, settings, connector)

    retried = _sync(sessions, settings, connector, holder=RETRY)

    assert retried.status == SyncRunStatus.SUCCEEDED.value, retried.error
    dropped, retry = connector_runs(sessions, connector)
    assert dropped.status is SyncRunStatus.FAILED
    assert dropped.error_code == INTERRUPTED
    assert str(retry.id) == retried.run_id
    _ended_cleanly(sessions, settings, connector)


def _revoked(sessions, connector) -> Counter[str]:
    """How often each person was recorded revoked."""
    users = {str(user.id): name for name, user in linked_users(sessions, connector).items()}
    with sessions() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "user.revoked"))
        counted = Counter(users[str(e.target_id)] for e in events if str(e.target_id) in users)
        s.rollback()
        return counted


def test_an_approval_the_database_drops_mid_apply_is_taken_over_by_its_retry(
    make_connector, sessions, settings, engine, directory, monkeypatch
):
    connector, held = _approved_leavers(make_connector, sessions, settings, directory)
    outage = refusing_connections(settings, engine)

    def read_then_restart(*args: Any, **kwargs: Any) -> Any:
        plan = read_full_plan(*args, **kwargs)
        outage.__enter__()
        return plan

    monkeypatch.setattr(directory_approval, "read_full_plan", read_then_restart)
    try:
        with pytest.raises(Exception) as raised:
            _approve(sessions, settings, held.run_id, holder=FIRST)
    finally:
        outage.__exit__(None, None, None)
    assert is_unavailable(raised.value)  # what the task retries
    assert _lease_held(sessions, settings, connector)
    monkeypatch.undo()

    retried = _approve(sessions, settings, held.run_id, holder=RETRY)

    assert retried.status == SyncRunStatus.APPROVED.value, retried.error
    assert _revoked(sessions, connector) == Counter({"bob", "carol"})
    assert not _lease_held(sessions, settings, connector)
    following = _sync(sessions, settings, connector, holder=Holder.attempt("the-next-task", 0))
    assert following.status == SyncRunStatus.SUCCEEDED.value, following.error
    assert _revoked(sessions, connector) == Counter({"bob", "carol"})


def _approve(sessions, settings, run_id: str, holder: Holder):
    return apply_approval(
        sessions, settings, run_id=uuid.UUID(run_id), actor=factories.SETUP, holder=holder
    )


def test_an_approval_whose_connection_drops_once_is_not_refused_and_its_retry_applies_it(
    make_connector, sessions, settings, directory, monkeypatch
):
    """The database back at once: the approval stays recorded (it was refused before, and an
    admin had to approve again), and the task's retry applies it."""
    connector, held = _approved_leavers(make_connector, sessions, settings, directory)
    approve_run = directory_approval.approvals.approve_run

    def drop_connection_then_approve(session, **kwargs: Any) -> Any:
        monkeypatch.setattr(directory_approval.approvals, "approve_run", approve_run)
        with sessions() as other:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            other.rollback()
        return approve_run(session, **kwargs)

    monkeypatch.setattr(directory_approval.approvals, "approve_run", drop_connection_then_approve)
    with pytest.raises(DBAPIError) as raised:
        _approve(sessions, settings, held.run_id, holder=FIRST)
    assert is_unavailable(raised.value)
    (_import, run) = connector_runs(sessions, connector)
    assert run.status is SyncRunStatus.APPROVING  # still approved, not refused

    retried = _approve(sessions, settings, held.run_id, holder=RETRY)

    assert retried.status == SyncRunStatus.APPROVED.value, retried.error
    assert _revoked(sessions, connector) == Counter({"bob", "carol"})


def _approved_leavers(make_connector, sessions, settings, directory) -> tuple[Any, Any]:
    """An imported connector whose next sync held two leavers, bob and carol, and whose
    held run an admin has approved (not yet applied)."""
    connector = make_connector(threshold_count=1)
    imported = _sync(sessions, settings, connector, holder=Holder.attempt("import", 0))
    assert imported.status == SyncRunStatus.SUCCEEDED.value
    directory.delete(directory.person_dn("bob"))
    directory.delete(directory.person_dn("carol"))
    held = _sync(sessions, settings, connector, holder=Holder.attempt("held", 0))
    assert held.status == SyncRunStatus.QUARANTINED.value
    with sessions() as s:
        request_approval(
            s, run=s.get_one(DirectorySyncRun, uuid.UUID(held.run_id)), actor=factories.SETUP
        )
        s.commit()
    return connector, held


def test_a_cli_sync_whose_apply_loses_its_connection_says_so_in_one_line(
    make_connector, sessions, settings, directory, monkeypatch
):
    """`ldap sync` runs the sync in its own process: its apply's backend terminated, the run
    is failed `database_unavailable` and the command says the database was lost, in one line
    (no traceback, nothing applied); the next `ldap sync` applies the change once."""
    from click.testing import CliRunner

    from cli.main import main
    from models.entities import Organisation
    from tests.support.worker import settings_env
    from worker import directory_sync

    connector = make_connector(threshold_count=1)
    assert _sync(sessions, settings, connector, holder=FIRST).status == "succeeded"
    directory.delete(directory.person_dn("bob"))
    with sessions() as s:
        slug = s.get_one(Organisation, connector.organisation_id).slug
        s.rollback()
    apply = directory_sync.apply_directory_plan

    def terminated_then_apply(session, **kwargs: Any) -> Any:
        monkeypatch.setattr(directory_sync, "apply_directory_plan", apply)
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with sessions() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            other.rollback()
        return apply(session, **kwargs)

    monkeypatch.setattr(directory_sync, "apply_directory_plan", terminated_then_apply)
    runner = CliRunner(env=settings_env(settings))

    lost = runner.invoke(main, ["ldap", "sync", "--org", slug])

    assert lost.exit_code == 1, lost.output
    assert "cannot use the database" in lost.output and "Traceback" not in lost.output
    _imported, dropped = connector_runs(sessions, connector)
    assert dropped.status is SyncRunStatus.FAILED
    assert dropped.error_code == DATABASE_UNAVAILABLE
    assert _revoked(sessions, connector) == Counter()
    again = runner.invoke(main, ["ldap", "sync", "--org", slug])
    assert again.exit_code == 0, again.output
    assert _revoked(sessions, connector) == Counter({"bob"})
