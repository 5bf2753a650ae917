"""A directory sync on a real worker whose apply loses its database connection: the plan is
read and checked, the apply waits on a leaver's row (this test's own connection holds it, as
an admin's open transaction would), and its backend is terminated (pg_terminate_backend on
this run's own database; the server keeps running). The apply is one transaction: nothing of
it is kept. The run is failed as transient (`database_unavailable`, a one-line reason, no
traceback) and the task is retried soon, with the backoff every task waiting out the database
has (worker.tasks.base): the retry applies the leaver's revocation whole and once, without
waiting for the next scheduled sync; nobody still in the directory is touched.

PostgreSQL only (SQLite's outage is tests/ldap/test_sync_outage.py's)."""

from __future__ import annotations

from sqlalchemy import select, text

from models.directory.runs import DATABASE_UNAVAILABLE
from models.entities import User
from models.enums import SyncRunStatus, UserStatus
from tests.ldap.conftest import connector_runs, linked_users
from tests.ldap.test_worker_killed_mid_sync import (  # noqa: F401 (the fixture)
    LEASE_SECONDS,
    lease_live,
    own,
    revocations_of,
    statuses,
)
from tests.support.wait import wait_until
from tests.support.worker import start_worker


def waiting_backends(engine) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
        )


def terminate(engine, pids: list[int]) -> None:
    with engine.connect() as connection:
        for pid in pids:
            connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})


def test_a_sync_whose_apply_loses_its_connection_is_failed_transient_and_retried_at_once(
    own,  # noqa: F811 (the fixture imported above)
    make_connector,
    sync,
    sessions,
    engine,
    directory,
    tmp_path,
):
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
        sent = celery_app.send_task(
            "directory.sync",
            kwargs={"connector_id": str(connector.id), "kind": "full", "trigger": "test"},
        )
        waiting = wait_until(
            lambda: waiting_backends(engine), timeout=60, what="its apply on bob's row"
        )
        terminate(engine, waiting)
        holder.rollback()  # bob's row is free again
        wait_until(
            lambda: statuses(sessions, connector)["bob"] is UserStatus.REVOKED,
            timeout=60,  # the retry comes within about a second; no schedule runs here
            what="the task's retry revoking bob",
        )
        wait_until(lambda: not lease_live(sessions, connector), what="its lease let go")
        assert worker.process.poll() is None  # the worker lives on
        log = worker.log()
    finally:
        holder.close()
        worker.stop()

    _first, dropped, retried = connector_runs(sessions, connector)
    assert dropped.status is SyncRunStatus.FAILED  # transient: said so, in one line
    assert dropped.error_code == DATABASE_UNAVAILABLE
    assert dropped.error.startswith("OperationalError") and "\n" not in dropped.error
    assert retried.status is SyncRunStatus.SUCCEEDED
    assert f"[{sent.id}] retry:" in log  # the same task, retried
    assert "Traceback" not in log
    assert statuses(sessions, connector) == {
        "alice": UserStatus.ACTIVE,
        "bob": UserStatus.REVOKED,
        "carol": UserStatus.ACTIVE,
        "dave": UserStatus.ACTIVE,
    }
    assert revocations_of(sessions, bob.id) == 1  # one audit event: revoked once
