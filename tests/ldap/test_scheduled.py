"""End to end: the beat job's fan-out runs a scheduled sync in the real Celery worker."""

from __future__ import annotations

from datetime import timedelta

from models import outbox
from models.base import utcnow
from models.directory import runs
from models.directory.schedule import enqueue_due_syncs
from models.entities import DirectoryConnector, SyncLease
from tests.ldap.conftest import linked_users
from tests.support.relay import wait_relaying


def test_due_connectors_fan_out_by_interval(make_connector, sessions):
    connector = make_connector(full_sync_minutes=60, incremental_minutes=5)
    now = utcnow()
    with sessions() as s:
        assert (str(connector.id), "full") in enqueue_due_syncs(s, now=now)
        assert enqueue_due_syncs(s, now=now + timedelta(minutes=1)) == []
        assert enqueue_due_syncs(s, now=now + timedelta(minutes=6)) == [
            (str(connector.id), "incremental")
        ]
        s.get_one(DirectoryConnector, connector.id).enabled = False
        assert enqueue_due_syncs(s, now=now + timedelta(hours=2)) == []
        s.rollback()


def test_scheduled_sync_runs_in_the_worker(make_connector, sessions, worker, directory):
    connector = make_connector()
    with sessions() as s:
        outbox.enqueue(s, "directory.schedule_due")
        s.commit()

    def imported() -> bool:
        # The people commit before the run lets go of the connector's lease; an incremental
        # sync sent in between finds the lease held and is skipped (it failed so, under load).
        with sessions() as s:
            released = s.get(SyncLease, runs.lease_name(connector.id)) is None
        return released and len(linked_users(sessions, connector)) == 4

    wait_relaying(imported, timeout=60, what="the scheduled sync to import the directory")
    directory.replace(directory.person_dn("alice"), "displayName", b"Alice Kingsleigh")
    with sessions() as s:
        outbox.enqueue(s, "directory.sync", connector_id=str(connector.id), kind="incremental")
        s.commit()
    wait_relaying(
        lambda: linked_users(sessions, connector)["alice"].name == "Alice Kingsleigh",
        timeout=60,
        what="the incremental sync in the worker",
    )
