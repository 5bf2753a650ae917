"""A Celery worker running a directory sync (the real slapd of the tests) gets SIGKILL, with its
pool, in the middle of applying the run's plan: the plan is read and checked, and the apply is
waiting on a person's row (this test's own connection holds it, as an admin's open
transaction would). Nothing of the run was applied: the apply is one transaction, so nobody is
revoked because a run died half-way. The dead holder's lease expires after
DIRECTORY_SYNC_LEASE_SECONDS; the next run takes the connector over, ends the dead run
(`sync_interrupted`) and either applies the change whole, once, or, when the directory changed
meanwhile past the mass-change threshold, holds the whole change for an admin (the gate counts
every revocation, none of which the dead run let through).

PostgreSQL only: SQLite locks the whole file, which would hold the run before it starts (that
kill is tests/ldap/test_runs_end.py's)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from celery.result import AsyncResult
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.directory.runs import lease_name
from models.entities import AuditEvent, User
from models.enums import SyncRunStatus, UserStatus
from models.sync_lock import live_leases
from tests.ldap.conftest import connector_runs, get_run, linked_users
from tests.support.db_outage import backends_waiting_on_a_lock
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, start_worker
from worker.directory_sync import run_sync

LEASE_SECONDS = 3.0


@pytest.fixture
def own(settings, engine):
    """Settings with a queue of this test's own: no other test's worker takes its sync."""
    from worker.celery_app import configure_celery

    if engine.dialect.name != "postgresql":
        pytest.skip("the apply is held on a row lock (SQLite locks the whole file)")
    own = settings.model_copy(
        update={
            "celery_queue": f"{settings.celery_queue}-ldapkill",
            "directory_sync_lease_seconds": LEASE_SECONDS,
        }
    )
    configure_celery(own)
    yield own
    configure_celery(settings)


def lease_live(sessions, connector) -> bool:
    with sessions() as s:
        return bool(live_leases(s, [lease_name(connector.id)], now=utcnow()))


def statuses(sessions, connector) -> dict[str, UserStatus]:
    return {name: user.status for name, user in linked_users(sessions, connector).items()}


def revocations_of(sessions, user_id) -> int:
    with sessions() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "user.revoked", AuditEvent.target_id == str(user_id))
            )
            or 0
        )


@dataclass
class HeldSync:
    """A worker's directory sync whose apply will wait on bob's row, which `holder` locks."""

    connector: Any
    bob: User
    worker: WorkerProcess
    holder: Session
    task: AsyncResult


@contextmanager
def sync_held_on_bob(  # type: ignore[no-untyped-def]
    own, make_connector, sync, sessions, directory, tmp_path
) -> Iterator[HeldSync]:
    """A connector synced once (four people), bob deleted from the directory, and a real
    worker's sync sent while this test's connection holds bob's row, as an admin's open
    transaction would. The worker is killed and the row let go on leaving."""
    from worker.celery_app import celery_app

    connector = make_connector(threshold_count=1)
    assert sync(connector).status == "succeeded"
    bob = linked_users(sessions, connector)["bob"]
    directory.delete(directory.person_dn("bob"))
    worker = start_worker(
        own,
        log_dir=tmp_path,
        concurrency=1,
        extra_env={"DIRECTORY_SYNC_LEASE_SECONDS": str(LEASE_SECONDS)},
    )
    holder = sessions()
    try:
        holder.execute(select(User).where(User.id == bob.id).with_for_update())
        task = celery_app.send_task(
            "directory.sync",
            kwargs={"connector_id": str(connector.id), "kind": "full", "trigger": "test"},
        )
        yield HeldSync(connector, bob, worker, holder, task)
    finally:
        worker.kill()
        holder.rollback()
        holder.close()


@pytest.fixture
def killed_mid_apply(own, make_connector, sync, sessions, engine, directory, tmp_path) -> Iterator:
    """The held sync killed (SIGKILL, with its pool) while its apply waits on bob's row.
    Yields the connector, the dead run and bob."""
    with sync_held_on_bob(own, make_connector, sync, sessions, directory, tmp_path) as held:
        dead = wait_until(
            lambda: next(
                (
                    r
                    for r in connector_runs(sessions, held.connector)
                    if r.trigger == "test" and r.status is SyncRunStatus.RUNNING
                ),
                None,
            ),
            timeout=60,
            what="the worker's run to start",
        )
        wait_until(
            lambda: backends_waiting_on_a_lock(engine), timeout=60, what="its apply on bob's row"
        )
        os.killpg(held.worker.process.pid, signal.SIGKILL)  # the worker and its pool, mid-apply
        held.worker.process.wait(timeout=10)
    yield held.connector, dead, held.bob


def test_a_sync_killed_mid_apply_applied_nothing_and_the_next_run_applies_it_once(
    killed_mid_apply, own, sessions
):
    connector, dead, bob = killed_mid_apply
    assert statuses(sessions, connector) == dict.fromkeys(
        ["alice", "bob", "carol", "dave"], UserStatus.ACTIVE
    )  # nothing of the dead run committed
    wait_until(
        lambda: not lease_live(sessions, connector),
        timeout=20 * LEASE_SECONDS,
        what="the dead holder's lease to expire",
    )

    outcome = run_sync(sessions, own, connector_id=connector.id, trigger="next")

    assert outcome.status == "succeeded", outcome
    reaped = get_run(sessions, str(dead.id))
    assert reaped.status is SyncRunStatus.FAILED and reaped.error_code == "sync_interrupted"
    assert statuses(sessions, connector) == {
        "alice": UserStatus.ACTIVE,
        "bob": UserStatus.REVOKED,
        "carol": UserStatus.ACTIVE,
        "dave": UserStatus.ACTIVE,
    }
    assert revocations_of(sessions, bob.id) == 1


def test_a_sync_killed_mid_apply_lets_nothing_past_the_gate(
    killed_mid_apply, own, sessions, directory
):
    """Carol leaves too while the dead run's lease runs out: the next run revokes two, over
    the threshold of one, and is held whole; the dead run let neither through."""
    connector, dead, bob = killed_mid_apply
    directory.delete(directory.person_dn("carol"))
    wait_until(
        lambda: not lease_live(sessions, connector),
        timeout=20 * LEASE_SECONDS,
        what="the dead holder's lease to expire",
    )

    outcome = run_sync(sessions, own, connector_id=connector.id, trigger="next")

    assert outcome.status == "quarantined", outcome
    assert "more than the threshold of 1" in outcome.error
    assert get_run(sessions, str(dead.id)).error_code == "sync_interrupted"
    assert set(statuses(sessions, connector).values()) == {UserStatus.ACTIVE}
    assert revocations_of(sessions, bob.id) == 0
