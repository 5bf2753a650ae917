"""Approving a held plan: recorded at once and applied by a worker under the connector's lease
(with its heartbeat); refused once a later sync completed, otherwise re-checked against the
directory as it is now (what no longer holds is dropped and reported)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from models.actions.directory_connectors import update_connector
from models.base import utcnow
from models.directory.approvals import approve_run, request_approval
from models.directory.runs import SyncRunning, lease_name
from models.entities import (
    AuditEvent,
    DirectoryConnector,
    DirectorySyncRun,
    OutboxMessage,
)
from models.enums import SyncRunStatus, UserStatus
from models.errors import InvalidTransition
from models.sync_lock import live_leases
from tests.ldap.conftest import get_run, lease_renewed_past_its_first_term, linked_users
from tests.support import factories
from tests.support.slow_proxy import slow_proxy
from tests.support.wait import wait_until
from worker.directory_approval import apply_approval
from worker.directory_sync import SyncOutcome, run_sync

NARROW = "(&(objectClass=inetOrgPerson)(uid=alice))"


def _change(session, settings, connector, **fields):
    update_connector(
        session,
        connector=session.get_one(DirectoryConnector, connector.id),
        fields=fields,
        bind_password=None,
        settings=settings,
        actor=factories.SETUP,
    )
    session.commit()


def _approve(sessions, settings, connector, run_id) -> SyncOutcome:
    """What the API and the worker do: record the approval, then apply it here. No worker
    runs for this file (the worker's own test is in test_approval_in_worker.py), so nothing
    else applies it meanwhile; the queued task waits, and the next file's worker starts on
    purged queues."""
    with sessions() as s:
        request_approval(
            s, run=s.get_one(DirectorySyncRun, uuid.UUID(run_id)), actor=factories.SETUP
        )
        s.commit()
    return wait_until(lambda: _apply(sessions, settings, run_id), timeout=60, what="the apply")


def _apply(sessions, settings, run_id) -> SyncOutcome | None:
    try:
        return apply_approval(sessions, settings, run_id=uuid.UUID(run_id), actor=factories.SETUP)
    except SyncRunning:
        return None  # a worker holds the lease: ask again, as its task's retry does


def _audited(sessions, action: str, run_id: str) -> list[AuditEvent]:
    with sessions() as s:
        events = [
            e
            for e in s.scalars(select(AuditEvent).where(AuditEvent.action == action))
            if (e.after or {}).get("run_id") == run_id
        ]
        s.expunge_all()
        s.rollback()
    return events


def _all_active(sessions, connector) -> bool:
    return all(u.status is UserStatus.ACTIVE for u in linked_users(sessions, connector).values())


def test_a_plan_outdated_by_a_later_sync_cannot_be_approved(
    make_connector, sync, sessions, session, settings
):
    connector = make_connector(threshold_percent=10)
    sync(connector)
    _change(session, settings, connector, user_filter=NARROW)  # narrowed by mistake
    held = sync(connector)
    assert held.status == "quarantined" and held.summary["revoke"] == 3
    _change(session, settings, connector, user_filter="")  # fixed
    assert sync(connector).status == "succeeded"

    with pytest.raises(InvalidTransition, match="later sync of this connector"):
        _approve(sessions, settings, connector, held.run_id)  # refused before it is recorded
    with sessions() as s, pytest.raises(InvalidTransition, match="outdated"):
        approve_run(
            s, run=s.get_one(DirectorySyncRun, uuid.UUID(held.run_id)), actor=factories.SETUP
        )
    assert get_run(sessions, held.run_id).status is SyncRunStatus.QUARANTINED
    assert _all_active(sessions, connector)


def test_approval_rereads_the_directory_and_drops_what_no_longer_holds(
    make_connector, sync, sessions, session, settings, directory
):
    connector = make_connector(threshold_percent=10)
    sync(connector)
    for uid in ("bob", "carol"):
        directory.replace(directory.person_dn(uid), "pwdAccountLockedTime", b"000001010000Z")
    held = sync(connector)
    assert held.status == "quarantined" and held.summary["revoke"] == 2
    directory.replace(directory.person_dn("carol"), "pwdAccountLockedTime")  # unlocked since

    applied = _approve(sessions, settings, connector, held.run_id)
    assert applied.status == "approved"
    assert get_run(sessions, held.run_id).revoked_count == 1
    users = linked_users(sessions, connector)
    assert users["bob"].status is UserStatus.REVOKED
    assert users["carol"].status is UserStatus.ACTIVE
    run = get_run(sessions, held.run_id)
    assert run.status is SyncRunStatus.APPROVED
    assert run.plan["dropped_counts"] == {"revokes": 1}
    assert [item["email"].split("@")[0] for item in run.plan["dropped"]["revokes"]] == ["carol"]
    with sessions() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "directory_sync.approved"))
        assert event is not None and event.after["dropped"] == {"revokes": 1}
        s.rollback()


def test_a_narrowed_filter_fixed_before_approval_revokes_nobody(
    make_connector, sync, sessions, session, settings
):
    connector = make_connector(threshold_percent=10)
    sync(connector)
    _change(session, settings, connector, user_filter=NARROW)
    held = sync(connector)
    assert held.status == "quarantined"
    _change(session, settings, connector, user_filter="")
    applied = _approve(sessions, settings, connector, held.run_id)
    assert applied.status == "approved"
    assert get_run(sessions, held.run_id).revoked_count == 0
    assert get_run(sessions, held.run_id).plan["dropped_counts"] == {"revokes": 3}
    assert _all_active(sessions, connector)


def test_an_unreadable_directory_refuses_the_approval_and_the_run_waits_again(
    make_connector, sync, sessions, session, settings, directory
):
    connector = make_connector(threshold_percent=10)
    sync(connector)
    directory.replace(directory.person_dn("bob"), "pwdAccountLockedTime", b"000001010000Z")
    held = sync(connector)
    good_urls = list(connector.server_urls)
    _change(session, settings, connector, server_urls=["ldap://127.0.0.1:1"], connect_timeout=0.5)

    refused = _approve(sessions, settings, connector, held.run_id)
    assert refused.status == "quarantined"
    run = get_run(sessions, held.run_id)
    assert run.status is SyncRunStatus.QUARANTINED
    assert "could not be read to re-check the plan" in run.plan["refused"]["error"]
    assert run.plan["refused"]["error_code"] == "directory_unavailable"
    [event] = _audited(sessions, "directory_sync.approval_refused", held.run_id)
    assert event.before == {"status": "approving", "decided_by": str(factories.SETUP)}
    assert linked_users(sessions, connector)["bob"].status is UserStatus.ACTIVE

    _change(session, settings, connector, server_urls=good_urls)  # approved again, applied
    assert _approve(sessions, settings, connector, held.run_id).status == "approved"
    assert "refused" not in get_run(sessions, held.run_id).plan
    assert linked_users(sessions, connector)["bob"].status is UserStatus.REVOKED


LEASE_SECONDS = 3.0


def _lease_live(sessions, connector) -> bool:
    with sessions() as s:
        live = live_leases(s, [lease_name(connector.id)], now=utcnow())
        s.rollback()
    return bool(live)


def test_an_approval_reading_longer_than_its_lease_keeps_it(
    make_connector, sync, sessions, session, settings, directory
):
    """The approval's re-read renews the connector's lease as a sync does: a sync started
    meanwhile is skipped, however long the read takes."""
    # Each answer comes 3 s late through the proxy: the searches must wait for it.
    connector = make_connector(threshold_percent=10, search_timeout=120.0, connect_timeout=60.0)
    sync(connector)
    directory.replace(directory.person_dn("bob"), "pwdAccountLockedTime", b"000001010000Z")
    held = sync(connector)
    short = settings.model_copy(update={"directory_sync_lease_seconds": LEASE_SECONDS})
    with sessions() as s:
        request_approval(
            s, run=s.get_one(DirectorySyncRun, uuid.UUID(held.run_id)), actor=factories.SETUP
        )
        for queued in [m for m in s.new if isinstance(m, OutboxMessage)]:
            s.expunge(queued)  # this test is the worker: the test run's own never sees it
        s.commit()
    outcomes: list[SyncOutcome] = []

    def approve() -> None:
        run_id = uuid.UUID(held.run_id)
        outcomes.append(apply_approval(sessions, short, run_id=run_id, actor=factories.SETUP))

    with slow_proxy(connector.server_urls[0], delay=3.0) as slow:  # a read of ~15 s
        _change(session, settings, connector, server_urls=[slow])
        approving = threading.Thread(target=approve)
        approving.start()
        try:
            first, renewed = lease_renewed_past_its_first_term(sessions, connector, LEASE_SECONDS)
            assert approving.is_alive(), outcomes  # still reading
            # A sync started after the first term ran out, within the renewed one (the clock
            # stopped there: a late heartbeat on a loaded machine cannot let the lease lapse).
            with time_machine.travel(renewed - timedelta(seconds=1), tick=False):
                assert first < utcnow()
                second = run_sync(sessions, short, connector_id=connector.id, trigger="test")
            assert second.status == "skipped", second
            assert approving.is_alive(), outcomes
        finally:
            approving.join(timeout=120)
    [outcome] = outcomes
    assert outcome.status == "approved", outcome
    assert linked_users(sessions, connector)["bob"].status is UserStatus.REVOKED
