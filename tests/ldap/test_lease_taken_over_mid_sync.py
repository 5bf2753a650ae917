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
from models.sync_lock import SyncLock
from tests.ldap.conftest import connector_runs, linked_users
from worker.directory_sync import run_sync


class _Observed(SyncLock):
    """The real lease, telling the test when a renewal found it taken."""

    def __init__(self, sessions) -> None:
        super().__init__(sessions)
        self.found_taken = threading.Event()

    def renew(self, name: str, token: str, *, ttl: float) -> bool:
        renewed = super().renew(name, token, ttl=ttl)
        if not renewed:
            self.found_taken.set()
        return renewed


def _expire(sessions, name: str) -> None:
    with sessions() as s:
        s.execute(update(SyncLease).where(SyncLease.name == name).values(expires_at=utcnow()))
        s.commit()


def test_a_sync_whose_lease_was_taken_over_stops_at_the_next_page(
    make_connector, sessions, settings, directory
):
    connector = make_connector(page_size=1)  # four people, four pages
    quick = settings.model_copy(update={"directory_sync_lease_seconds": 1.0})  # a beat: 1/3 s
    lock = _Observed(sessions)
    pages: list[int] = []
    taken_over: list[str] = []

    def taken_over_after_the_first_page(read: int) -> None:
        pages.append(read)
        if len(pages) > 1:
            return
        _expire(sessions, lease_name(connector.id))  # as if the heartbeat had stalled
        other = run_sync(sessions, quick, connector_id=connector.id, trigger="other worker")
        taken_over.append(other.status)
        lock.found_taken.wait(30)

    outcome = run_sync(
        sessions,
        quick,
        connector_id=connector.id,
        trigger="test",
        progress=taken_over_after_the_first_page,
        lock=lock,
    )

    assert taken_over == ["succeeded"]
    assert lock.found_taken.is_set()
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
