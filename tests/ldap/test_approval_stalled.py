"""An approval whose worker died before applying it (the run left `approving`) does not wait
for Celery's redelivery: once its lease has expired, the scheduler's reaper hands it to a
worker again (audited), and after a few such re-drives returns the run to quarantine with the
reason."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from datetime import timedelta

from models.base import utcnow
from models.directory.approvals import (
    APPROVAL_REDRIVES,
    STALLED,
    reap_stalled_approvals,
    request_approval,
)
from models.entities import DirectorySyncRun, OutboxMessage
from models.enums import SyncRunStatus, UserStatus
from tests.ldap.conftest import get_run, lease_renewed_past_its_first_term, linked_users
from tests.ldap.test_approval_recheck import _audited, _change, _lease_live
from tests.ldap.test_runs_end import _silent_server
from tests.support import factories
from tests.support.relay import wait_relaying
from tests.support.wait import wait_until
from tests.support.worker import ROOT, settings_env

LEASE_SECONDS = 3.0
# What a Celery worker does with the apply task, in a process of its own (killed below).
APPLY_TASK = """
import sys
from worker.tasks.directory import apply_approved_plan
apply_approved_plan.run(sys.argv[1], {"source": "system", "name": "test", "user_id": None})
"""


def _held_run(make_connector, sync, directory, **fields):
    """A quarantined plan revoking bob (administratively locked)."""
    connector = make_connector(threshold_percent=10, **fields)
    sync(connector)
    directory.replace(directory.person_dn("bob"), "pwdAccountLockedTime", b"000001010000Z")
    held = sync(connector)
    assert held.status == "quarantined"
    return connector, held.run_id


def _record_approval(sessions, run_id: str) -> None:
    """The admin's approval, its task message lost with the worker that took it."""
    with sessions() as s:
        request_approval(
            s, run=s.get_one(DirectorySyncRun, uuid.UUID(run_id)), actor=factories.SETUP
        )
        for queued in [m for m in s.new if isinstance(m, OutboxMessage)]:
            s.expunge(queued)  # never relayed: only the reaper can hand it on
        s.commit()


def _reap(sessions, *, at=None, relay: bool = True) -> list[uuid.UUID]:
    """The scheduler's reaper; with relay=False, what it hands on is counted, not sent."""
    with sessions() as s:
        handled = reap_stalled_approvals(s, now=at or utcnow(), lease_seconds=LEASE_SECONDS)
        queued = [
            m
            for m in s.new
            if isinstance(m, OutboxMessage) and m.task == "directory.apply_approval"
        ]
        if not relay:
            for message in queued:
                s.expunge(message)
        s.commit()
    return handled


def test_an_approval_whose_worker_was_killed_is_handed_on_and_applied(
    make_connector, sync, sessions, session, settings, directory, slapd, worker, tmp_path
):
    connector, run_id = _held_run(
        make_connector, sync, directory, connect_timeout=300.0, search_timeout=300.0
    )
    good_urls = list(connector.server_urls)
    _record_approval(sessions, run_id)
    log = tmp_path / "apply.log"
    with _silent_server() as hung:
        _change(session, settings, connector, server_urls=[hung])  # the re-read hangs
        env = settings_env(
            settings, DIRECTORY_SYNC_LEASE_SECONDS=str(LEASE_SECONDS), LOG_LEVEL="ERROR"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", APPLY_TASK, run_id],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            _, renewed = lease_renewed_past_its_first_term(sessions, connector, LEASE_SECONDS)
            assert child.poll() is None, log.read_text()
            # approved over a lease ago, but its lease is live (reaped as of a moment within
            # the renewed lease: a late heartbeat on a loaded machine cannot let it lapse)
            assert _reap(sessions, at=renewed) == []
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    assert get_run(sessions, run_id).status is SyncRunStatus.APPROVING  # nobody to end it
    _change(session, settings, connector, server_urls=good_urls)
    wait_until(
        lambda: not _lease_live(sessions, connector),
        timeout=20 * LEASE_SECONDS,
        what="the dead worker's lease to expire",
    )
    handed_on_at = utcnow()
    assert _reap(sessions, at=handed_on_at) == [uuid.UUID(run_id)]
    [event] = _audited(sessions, "directory_sync.approval_redriven", run_id)
    assert event.after["redrives"] == 1 and event.after["decided_by"] == str(factories.SETUP)
    # just handed on: not again before a lease has passed (as of a moment within it, however
    # long this process waited between the two calls)
    within = handed_on_at + timedelta(seconds=LEASE_SECONDS / 2)
    assert _reap(sessions, at=within) == []
    wait_relaying(
        lambda: get_run(sessions, run_id).status is SyncRunStatus.APPROVED,
        timeout=90,
        what="the test run's worker to apply the re-driven approval",
    )
    assert linked_users(sessions, connector)["bob"].status is UserStatus.REVOKED
    [approved] = _audited(sessions, "directory_sync.approved", run_id)
    assert approved.actor == str(factories.SETUP)  # in the approver's name


def test_an_approval_that_keeps_stalling_returns_to_quarantine(
    make_connector, sync, sessions, directory
):
    connector, run_id = _held_run(make_connector, sync, directory)
    _record_approval(sessions, run_id)
    assert _reap(sessions, relay=False) == []  # just recorded: its worker may not have started
    later = utcnow()
    for redrive in range(1, APPROVAL_REDRIVES + 1):  # each handed-on task lost again
        later += timedelta(seconds=2 * LEASE_SECONDS)
        assert _reap(sessions, at=later, relay=False) == [uuid.UUID(run_id)]
        assert get_run(sessions, run_id).plan["redriven"]["count"] == redrive
        assert _reap(sessions, at=later, relay=False) == []  # not twice within a lease
    assert len(_audited(sessions, "directory_sync.approval_redriven", run_id)) == 3
    later += timedelta(seconds=2 * LEASE_SECONDS)
    assert _reap(sessions, at=later, relay=False) == [uuid.UUID(run_id)]
    run = get_run(sessions, run_id)
    assert run.status is SyncRunStatus.QUARANTINED
    assert run.plan["refused"]["error_code"] == STALLED
    assert f"stopped {APPROVAL_REDRIVES + 1} times" in run.plan["refused"]["error"]
    [refused] = _audited(sessions, "directory_sync.approval_refused", run_id)
    assert refused.before == {"status": "approving", "decided_by": str(factories.SETUP)}
    assert linked_users(sessions, connector)["bob"].status is UserStatus.ACTIVE
