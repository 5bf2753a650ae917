"""The threshold quarantines large deprovisions; dry runs only plan; the lock serialises."""

from __future__ import annotations

import contextlib
import uuid

import pytest
from sqlalchemy import select

from models.directory.approvals import approve_run, discard_run
from models.entities import DirectorySyncRun, OutboxMessage
from models.enums import SyncRunStatus, UserStatus
from models.errors import InvalidTransition
from models.sync_lock import Holder, SyncLock
from tests.ldap.conftest import get_run, linked_users
from tests.support import factories


def _remove(directory, *uids):
    for uid in uids:
        dn = directory.person_dn(uid)
        for group in ("engineering", "admins"):
            with contextlib.suppress(Exception):
                directory.delete_values(f"cn={group},{directory.groups}", "member", dn.encode())
        directory.delete(dn)


def test_percent_threshold_quarantines_and_approval_applies(
    make_connector, sync, sessions, directory
):
    connector = make_connector(threshold_percent=10)  # the default: 1 of 4 is 25%
    sync(connector)
    _remove(directory, "bob")
    outcome = sync(connector)
    assert outcome.status == "quarantined"
    assert "more than 10%" in outcome.error
    assert linked_users(sessions, connector)["bob"].status is UserStatus.ACTIVE
    with sessions() as s:
        alerts = [
            m.kwargs
            for m in s.scalars(select(OutboxMessage))
            if m.kwargs.get("event") == "directory_sync.quarantined"
        ]
        assert alerts and alerts[0]["payload"]["summary"]["revoke"] == 1
        run = s.get_one(DirectorySyncRun, uuid.UUID(outcome.run_id))
        applied = approve_run(s, run=run, actor=factories.SETUP)
        s.commit()
        assert applied.revoked == 1
    run = get_run(sessions, outcome.run_id)
    assert run.status is SyncRunStatus.APPROVED and run.decided_by == "test-setup"
    assert linked_users(sessions, connector)["bob"].status is UserStatus.REVOKED
    with sessions() as s, pytest.raises(InvalidTransition):
        approve_run(s, run=s.get_one(DirectorySyncRun, run.id), actor=factories.SETUP)


def test_count_threshold_and_discard(make_connector, sync, sessions, directory):
    connector = make_connector(threshold_count=1)
    sync(connector)
    _remove(directory, "bob", "carol")
    outcome = sync(connector)
    assert outcome.status == "quarantined" and "more than the threshold of 1" in outcome.error
    with sessions() as s:
        discard_run(
            s, run=s.get_one(DirectorySyncRun, uuid.UUID(outcome.run_id)), actor=factories.SETUP
        )
        s.commit()
    assert get_run(sessions, outcome.run_id).status is SyncRunStatus.DISCARDED
    users = linked_users(sessions, connector)
    assert users["bob"].status is users["carol"].status is UserStatus.ACTIVE


def test_empty_directory_is_quarantined_not_everyone_revoked(
    make_connector, sync, sessions, directory
):
    connector = make_connector(threshold_percent=10)
    sync(connector)
    _remove(directory, "alice", "bob", "carol", "dave")
    outcome = sync(connector)
    assert outcome.status == "quarantined"
    assert all(u.status is UserStatus.ACTIVE for u in linked_users(sessions, connector).values())


def test_dry_run_stores_the_plan_and_changes_nothing(make_connector, sync, sessions):
    connector = make_connector()
    outcome = sync(connector, dry_run=True)
    assert outcome.status == "planned"
    assert outcome.summary["create"] == 4
    run = get_run(sessions, outcome.run_id)
    assert run.dry_run and len(run.plan["creates"]) == 4
    assert linked_users(sessions, connector) == {}


def test_database_lease(sessions, session):
    lock = SyncLock(sessions)
    name = f"test-{uuid.uuid4().hex}"
    token = lock.acquire(name, ttl=30)
    assert token is not None
    assert lock.acquire(name, ttl=30) is None
    lock.release(name, "not-the-holder")
    assert not lock.renew(name, "not-the-holder", ttl=30)
    assert lock.acquire(name, ttl=30) is None
    assert lock.renew(name, token, ttl=30)
    lock.release(name, token)
    assert not lock.renew(name, token, ttl=30)  # released: a late heartbeat takes nothing
    assert lock.acquire(name, ttl=30) is not None
    crashed = f"crashed-{uuid.uuid4().hex}"
    stale = lock.acquire(crashed, ttl=-1)  # a holder that crashed: lease long expired
    assert stale is not None
    assert lock.acquire(crashed, ttl=30) is not None
    assert not lock.renew(crashed, stale, ttl=30)  # the old holder lost it


def test_a_retry_takes_back_the_lease_of_its_earlier_attempt_and_nobody_else_does(
    sessions, session
):
    """A task's retry after the database dropped it before it could release its lease; the
    same task sent again (attempt 0 once more) and other tasks wait for it to expire."""
    lock = SyncLock(sessions)
    name = f"test-{uuid.uuid4().hex}"
    first = Holder.attempt("task-1", 0)
    assert lock.acquire(name, ttl=30, holder=first) == first.token
    assert lock.acquire(name, ttl=30, holder=Holder.attempt("task-1", 0)) is None
    assert lock.acquire(name, ttl=30, holder=Holder.attempt("task-2", 1)) is None
    assert lock.acquire(name, ttl=30) is None
    third = Holder.attempt("task-1", 2)
    assert lock.acquire(name, ttl=30, holder=third) == third.token
    assert not lock.renew(name, first.token, ttl=30)  # the earlier attempt lost it
    assert lock.acquire(name, ttl=30, holder=Holder.attempt("task-1", 1)) is None


def test_a_sync_while_another_holds_the_lock_is_skipped(make_connector, sessions, settings):
    from worker.directory_sync import run_sync

    connector = make_connector()
    lock = SyncLock(sessions)
    token = lock.acquire(f"directory-sync:{connector.id}", ttl=60)
    outcome = run_sync(sessions, settings, connector_id=connector.id, lock=lock)
    assert outcome.status == "skipped"
    assert linked_users(sessions, connector) == {}
    lock.release(f"directory-sync:{connector.id}", token)
    assert run_sync(sessions, settings, connector_id=connector.id, lock=lock).status == "succeeded"
