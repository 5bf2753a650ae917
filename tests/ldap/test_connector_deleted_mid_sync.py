"""A directory connector deleted by an admin while its sync reads the directory (held by a
loopback proxy until the delete committed). The delete takes the connector's runs with it
(ON DELETE CASCADE); the sync, once the directory answers, stops cleanly: its outcome says
the connector was deleted, nothing of its plan is applied (on PostgreSQL a first import's
creates written while it read are rolled back), nothing is written to the deleted rows and no
error escapes (the task would have failed). Before, it read its deleted run with get_one and
raised NoResultFound, and its crash handler raised it again trying to record the failure."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from models.actions.directory_connectors import delete_connector
from models.directory.runs import lease_name
from models.entities import AuditEvent, DirectoryConnector, SyncLease, User
from models.enums import SyncRunStatus
from tests.ldap.conftest import connector_runs
from tests.support import factories
from tests.support.parallel import in_thread
from tests.support.slow_proxy import slow_proxy
from tests.support.wait import wait_until
from worker.directory_sync import DELETED, run_sync


def _count(sessions, query) -> int:
    with sessions() as s:
        return int(s.scalar(query) or 0)


def test_a_connector_deleted_while_it_syncs_ends_the_run_cleanly(
    make_connector, sessions, settings, directory
):
    answering = threading.Event()
    with slow_proxy(directory.slapd.url, delay=0.0, held=answering) as slow:
        connector = make_connector(server_urls=[slow])
        syncing, out = in_thread(
            lambda: run_sync(sessions, settings, connector_id=connector.id, trigger="test")
        )
        try:
            wait_until(
                lambda: [
                    r
                    for r in connector_runs(sessions, connector)
                    if r.status is SyncRunStatus.RUNNING
                ],
                timeout=30,
                what="the sync to start",
            )
            with sessions() as admin:
                row = admin.get_one(DirectoryConnector, connector.id)
                delete_connector(admin, connector=row, actor=factories.SETUP)
                admin.commit()
        finally:
            answering.set()
            syncing.join(60)

    assert "error" not in out, out
    assert out["result"].status == DELETED, out
    assert connector_runs(sessions, connector) == []
    people = select(func.count()).select_from(User)
    assert _count(sessions, people.where(User.organisation_id == connector.organisation_id)) == 0
    events = select(AuditEvent.action).where(
        AuditEvent.organisation_id == connector.organisation_id,
        AuditEvent.action.like("directory%"),
    )
    with sessions() as s:
        assert sorted(s.scalars(events)) == [
            "directory_connector.created",
            "directory_connector.deleted",
        ]


def test_a_connector_deleted_while_it_syncs_stops_the_read_at_the_next_page(
    make_connector, sessions, settings, directory
):
    """The lease's heartbeat asks whether the connector is still there; once it is not, the
    heartbeat gives the lease up and the read stops between two pages, instead of reading the
    whole directory to find out when it applies. Before, all four pages were read."""
    connector = make_connector(page_size=1)  # four people, four pages
    quick = settings.model_copy(update={"directory_sync_lease_seconds": 1.0})  # a beat: 1/3 s
    lease = (
        select(func.count())
        .select_from(SyncLease)
        .where(SyncLease.name == lease_name(connector.id))
    )
    pages: list[int] = []
    never_given_up: list[str] = []  # kept here: an error raised in the read ends it as well

    def deleted_after_the_first_page(read: int) -> None:
        pages.append(read)
        if len(pages) > 1:
            return
        with sessions() as admin:
            row = admin.get_one(DirectoryConnector, connector.id)
            delete_connector(admin, connector=row, actor=factories.SETUP)
            admin.commit()
        try:
            wait_until(lambda: _count(sessions, lease) == 0, timeout=30, what="the lease given up")
        except AssertionError as exc:
            never_given_up.append(str(exc))

    outcome = run_sync(
        sessions,
        quick,
        connector_id=connector.id,
        trigger="test",
        progress=deleted_after_the_first_page,
    )
    assert never_given_up == []
    assert outcome.status == DELETED, outcome
    assert pages == [1]
    assert connector_runs(sessions, connector) == []
    people = select(func.count()).select_from(User)
    assert _count(sessions, people.where(User.organisation_id == connector.organisation_id)) == 0
