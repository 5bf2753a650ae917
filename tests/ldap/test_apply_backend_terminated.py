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

from models.directory.runs import DATABASE_UNAVAILABLE
from models.enums import SyncRunStatus, UserStatus
from tests.ldap.conftest import connector_runs
from tests.ldap.test_worker_killed_mid_sync import (  # noqa: F401 (the fixture)
    lease_live,
    own,
    revocations_of,
    statuses,
    sync_held_on_bob,
)
from tests.support.db_outage import backends_waiting_on_a_lock, terminate_pids
from tests.support.wait import wait_until


def test_a_sync_whose_apply_loses_its_connection_is_failed_transient_and_retried_at_once(
    own,  # noqa: F811 (the fixture imported above)
    make_connector,
    sync,
    sessions,
    engine,
    directory,
    tmp_path,
):
    with sync_held_on_bob(own, make_connector, sync, sessions, directory, tmp_path) as held:
        connector, bob = held.connector, held.bob
        waiting = wait_until(
            lambda: backends_waiting_on_a_lock(engine), timeout=60, what="its apply on bob's row"
        )
        terminate_pids(engine, waiting)
        held.holder.rollback()  # bob's row is free again
        wait_until(
            lambda: statuses(sessions, connector)["bob"] is UserStatus.REVOKED,
            timeout=60,  # the retry comes within about a second; no schedule runs here
            what="the task's retry revoking bob",
        )
        wait_until(lambda: not lease_live(sessions, connector), what="its lease let go")
        assert held.worker.process.poll() is None  # the worker lives on
        log = held.worker.log()

    _first, dropped, retried = connector_runs(sessions, connector)
    assert dropped.status is SyncRunStatus.FAILED  # transient: said so, in one line
    assert dropped.error_code == DATABASE_UNAVAILABLE
    assert dropped.error.startswith("OperationalError") and "\n" not in dropped.error
    assert retried.status is SyncRunStatus.SUCCEEDED
    assert f"[{held.task.id}] retry:" in log  # the same task, retried
    assert "Traceback" not in log
    assert statuses(sessions, connector) == {
        "alice": UserStatus.ACTIVE,
        "bob": UserStatus.REVOKED,
        "carol": UserStatus.ACTIVE,
        "dave": UserStatus.ACTIVE,
    }
    assert revocations_of(sessions, bob.id) == 1  # one audit event: revoked once
