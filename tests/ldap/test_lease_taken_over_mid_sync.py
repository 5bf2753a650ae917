"""A sync whose lease expired (its heartbeat could not renew it in time) and was taken by
another run: it stops reading at its next page, applies nothing, and says so in the audit
trail. Before, it read the directory to the end and noticed only when it came to apply."""

from __future__ import annotations

import threading

from sqlalchemy import select, update

from models.base import utcnow
from models.directory.runs import lease_name
from models.entities import AuditEvent, SyncLease
from models.enums import SyncRunStatus, UserStatus
from tests.ldap.conftest import connector_runs, linked_users
from tests.support.wait import wait_until
from worker.directory_sync import run_sync


def _heartbeats() -> set[threading.Thread]:
    """The lease heartbeats running in this process (worker.lease_heartbeat)."""
    return {t for t in threading.enumerate() if t.name == "sync-lease" and t.is_alive()}


def _expire(sessions, name: str) -> None:
    with sessions() as s:
        s.execute(update(SyncLease).where(SyncLease.name == name).values(expires_at=utcnow()))
        s.commit()


def test_a_sync_whose_lease_was_taken_over_stops_at_the_next_page(
    make_connector, sessions, settings, directory
):
    connector = make_connector(page_size=1)  # four people, four pages
    quick = settings.model_copy(update={"directory_sync_lease_seconds": 1.0})  # a beat: 1/3 s
    pages: list[int] = []
    taken_over: list[str] = []
    never_noticed: list[str] = []  # kept here: an error raised in the read ends it as well
    others = _heartbeats()  # none, unless another test left one

    def taken_over_after_the_first_page(read: int) -> None:
        pages.append(read)
        if len(pages) > 1:
            return
        _expire(sessions, lease_name(connector.id))  # as if the heartbeat had stalled
        other = run_sync(sessions, quick, connector_id=connector.id, trigger="other worker")
        taken_over.append(other.status)
        try:
            # it stops once it has found the lease taken and noted it
            wait_until(lambda: _heartbeats() <= others, what="the heartbeat to stop")
        except AssertionError as exc:
            never_noticed.append(str(exc))

    outcome = run_sync(
        sessions,
        quick,
        connector_id=connector.id,
        trigger="test",
        progress=taken_over_after_the_first_page,
    )

    assert taken_over == ["succeeded"]
    assert never_noticed == []
    assert pages == [1]
    assert outcome.status == "failed" and "lease" in outcome.error, outcome
    first, second = connector_runs(sessions, connector)
    assert (first.status, second.status) == (SyncRunStatus.FAILED, SyncRunStatus.SUCCEEDED)
    assert all(u.status is UserStatus.ACTIVE for u in linked_users(sessions, connector).values())
    with sessions() as s:
        stopped = s.scalars(
            select(AuditEvent).where(
                AuditEvent.organisation_id == connector.organisation_id,
                AuditEvent.action == "directory_sync.stopped",
            )
        ).all()
        assert [e.after["run_id"] for e in stopped] == [outcome.run_id]
        assert stopped[0].after["read"] == 1 and "lease" in stopped[0].after["reason"]
        s.rollback()
