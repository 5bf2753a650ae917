"""Bulk creation: written while the directory is read (PostgreSQL), one audit event per batch.

The writer starts once a full batch of creates is planned; here a batch is one person, so the
four people of the test directory take that path. On SQLite nothing is written before the
read ends, and every test must come out the same.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from connectors.ldap.client import DirectoryClient
from connectors.ldap.errors import DirectoryUnavailable
from connectors.ldap.plan import Create
from models.directory.approvals import approve_run
from models.directory.people_import import PeopleImport
from models.directory.runs import ldap_actor
from models.entities import (
    AuditEvent,
    DirectoryConnector,
    DirectorySyncRun,
    IdentityLink,
    Organisation,
    Team,
    TeamMembership,
    User,
)
from models.enums import Role, Source, SyncRunStatus, UserStatus
from models.settings import Settings
from tests.ldap.conftest import get_run, linked_users, writers_holding_users
from tests.support import factories
from worker.directory_create_stream import CreateStream


@pytest.fixture
def streamed(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> list[int]:
    """Batches of one person; the list collects a mark each time a writer thread starts."""
    monkeypatch.setattr("worker.directory_create_stream.BATCH", 1)
    starts: list[int] = []
    original = CreateStream._start

    def start(self: CreateStream) -> None:
        starts.append(1)
        original(self)

    monkeypatch.setattr(CreateStream, "_start", start)
    return starts


def _expect_stream(starts: list[int], settings: Settings) -> None:
    assert len(starts) == (0 if settings.is_sqlite else 1)


def _batch_events(sessions: Any, connector: DirectoryConnector) -> list[dict[str, Any]]:
    """The `user.created` batch events of this connector's organisation, their `after`."""
    with sessions() as s:
        events = s.scalars(
            select(AuditEvent.after).where(
                AuditEvent.organisation_id == connector.organisation_id,
                AuditEvent.action == "user.created",
                AuditEvent.target_type == "user_batch",
            )
        ).all()
        s.rollback()
        return [event for event in events if event is not None]


def _audited_users(sessions: Any, connector: DirectoryConnector) -> dict[str, dict[str, str]]:
    listed = [user for event in _batch_events(sessions, connector) for user in event["users"]]
    by_name = {user["email"].split("@")[0]: user for user in listed}
    assert len(by_name) == len(listed), "each user is in exactly one event"
    return by_name


def test_first_import_is_written_while_reading(
    make_connector, sync, sessions, settings, streamed, directory
):
    connector = make_connector()
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    _expect_stream(streamed, settings)
    users = linked_users(sessions, connector)
    assert sorted(users) == ["alice", "bob", "carol", "dave"]
    assert get_run(sessions, outcome.run_id).created_count == 4
    audited = _audited_users(sessions, connector)
    assert sorted(audited) == sorted(users)
    alice = audited["alice"]
    assert alice["id"] == str(users["alice"].id)
    assert alice["external_id"] == directory.entry_uuid(directory.person_dn("alice"))
    assert (alice["name"], alice["role"]) == ("Alice Liddell", "USER")
    for event in _batch_events(sessions, connector):
        assert event["count"] == len(event["users"])
        assert event["identity"] == {"source": "ldap", "connector_id": str(connector.id)}


def test_people_with_an_end_date_are_counted_with_their_dates_and_memberships(
    make_connector, sync, sessions, settings, streamed, directory
):
    """alice (`pwdEndTime`) and bob (`shadowExpire`) have an expiry ahead. Dated people are
    written as rows of their own; the run's count once left them out (2 of 4)."""
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    midnight = ahead.replace(hour=0, minute=0, second=0)  # shadowExpire counts whole days
    days = (ahead - datetime(1970, 1, 1, tzinfo=UTC)).days
    directory.replace(directory.person_dn("alice"), "pwdEndTime", _generalized(ahead))
    directory.add_values(directory.person_dn("bob"), "objectClass", b"shadowAccount")
    directory.replace(directory.person_dn("bob"), "shadowExpire", str(days).encode())
    connector = make_connector(group_teams={"engineering": "Engineering"})
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    _expect_stream(streamed, settings)
    assert get_run(sessions, outcome.run_id).created_count == 4
    users = linked_users(sessions, connector)
    ends = {uid: users[uid].access_ends_at for uid in ("alice", "bob", "carol", "dave")}
    assert ends == {"alice": ahead, "bob": midnight, "carol": None, "dave": None}
    assert users["alice"].access_ends_source is users["bob"].access_ends_source is Source.LDAP
    audited = _audited_users(sessions, connector)
    assert sorted(audited) == sorted(users)
    assert audited["alice"]["access_ends_at"] == ahead.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert audited["bob"]["access_ends_at"] == midnight.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "access_ends_at" not in audited["carol"]
    assert _engineers(sessions, connector) == {"alice", "bob", "carol"}


def _generalized(moment: datetime) -> bytes:
    return moment.strftime("%Y%m%d%H%M%SZ").encode()


def test_a_later_duplicate_email_takes_back_a_written_create(
    make_connector, sync, sessions, settings, streamed, directory
):
    directory.add_person("alice2", mail=f"alice@{directory.domain}")  # read after alice
    connector = make_connector()
    outcome = sync(connector)
    _expect_stream(streamed, settings)
    run = get_run(sessions, outcome.run_id)
    assert sorted(linked_users(sessions, connector)) == ["bob", "carol", "dave"]
    assert run.created_count == 3
    duplicates = [e for e in run.plan["errors"] if "more than one" in e["message"]]
    assert len(duplicates) == 2 and run.error_count == 2
    assert sorted(_audited_users(sessions, connector)) == ["bob", "carol", "dave"]
    with sessions() as s:
        assert s.scalar(select(User).where(User.email_key == f"alice@{directory.domain}")) is None
        s.rollback()


def test_a_quarantined_plan_leaves_no_written_creates(
    make_connector, sync, sessions, settings, streamed, directory
):
    connector = make_connector(threshold_count=1)
    sync(connector)
    streamed.clear()
    directory.add_person("erin")
    directory.add_person("frank")
    directory.delete(directory.person_dn("bob"))
    directory.delete(directory.person_dn("carol"))
    outcome = sync(connector)
    assert outcome.status == "quarantined"
    _expect_stream(streamed, settings)
    users = linked_users(sessions, connector)
    assert sorted(users) == ["alice", "bob", "carol", "dave"]
    assert "erin" not in _audited_users(sessions, connector)
    with sessions() as s:
        run = s.get_one(DirectorySyncRun, uuid.UUID(outcome.run_id))
        applied = approve_run(s, run=run, actor=factories.SETUP)
        s.commit()
    assert (applied.created, applied.revoked) == (2, 2)
    users = linked_users(sessions, connector)
    assert {"erin", "frank"} <= set(users) and users["bob"].status is UserStatus.REVOKED
    assert {"erin", "frank"} <= set(_audited_users(sessions, connector))


def test_a_failed_read_leaves_no_written_creates(
    make_connector, sync, sessions, settings, streamed, monkeypatch
):
    """The connection drops on the second page, after the first page's people were written."""
    receive = DirectoryClient._receive
    pages: list[int] = []

    def flaky(self: DirectoryClient, *args: Any, **kwargs: Any) -> Any:
        pages.append(1)
        if len(pages) == 2:
            raise DirectoryUnavailable("searching: the connection was lost")
        return receive(self, *args, **kwargs)

    monkeypatch.setattr(DirectoryClient, "_receive", flaky)
    monkeypatch.setattr("models.directory.read.MAX_WAITING", 1)  # plan from the first page on
    connector = make_connector()
    outcome = sync(connector)
    assert outcome.status == "failed" and "connection was lost" in outcome.error
    _expect_stream(streamed, settings)
    assert linked_users(sessions, connector) == {}
    assert _batch_events(sessions, connector) == []
    assert get_run(sessions, outcome.run_id).status is SyncRunStatus.FAILED


def test_roles_from_groups_reach_users_written_before_their_roles_were_planned(
    make_connector, sync, sessions, settings, streamed, directory
):
    """People are written as they are read; the roles their groups give are planned once
    every person is read, and set on the users (and their batch's event) afterwards."""
    connector = make_connector(group_roles={f"cn=admins,{directory.groups}": "ORG_ADMIN"})
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    _expect_stream(streamed, settings)
    users = linked_users(sessions, connector)
    assert users["alice"].role is Role.ORG_ADMIN and users["bob"].role is Role.USER
    audited = _audited_users(sessions, connector)
    assert (audited["alice"]["role"], audited["bob"]["role"]) == ("ORG_ADMIN", "USER")


def _engineers(sessions: Any, connector: DirectoryConnector) -> set[str]:
    """The local parts of the emails of the organisation's Engineering team's members."""
    with sessions() as s:
        emails = s.scalars(
            select(User.email)
            .join(TeamMembership, TeamMembership.user_id == User.id)
            .join(Team, Team.id == TeamMembership.team_id)
            .where(Team.organisation_id == connector.organisation_id, Team.name == "Engineering")
        ).all()
        s.rollback()
    return {email.split("@")[0] for email in emails}


def _written_by_backend(monkeypatch: pytest.MonkeyPatch, fail_on: int = 0) -> list[int]:
    """The PostgreSQL backend that writes each streamed batch; the `fail_on`th one fails."""
    backends: list[int] = []
    write = PeopleImport.write

    def recorded(self: PeopleImport, prepared: Any) -> None:
        if self.dialect.name == "postgresql":
            backends.append(self.session.execute(text("SELECT pg_backend_pid()")).scalar_one())
            if len(backends) == fail_on:
                raise RuntimeError("the writer's batch failed")
        write(self, prepared)

    monkeypatch.setattr(PeopleImport, "write", recorded)
    return backends


def test_two_transactions_write_the_import_and_commit_it_whole(
    make_connector, sync, sessions, settings, streamed, directory, monkeypatch
):
    """PostgreSQL: the batches go in turn to two connections, each batch with its people's
    memberships and events; the mapped teams are made first, so both can point to them."""
    backends = _written_by_backend(monkeypatch)
    connector = make_connector(group_teams={"engineering": "Engineering"})
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert len(set(backends)) == (0 if settings.is_sqlite else 2)
    users = linked_users(sessions, connector)
    assert sorted(users) == ["alice", "bob", "carol", "dave"]
    assert sorted(_audited_users(sessions, connector)) == sorted(users)
    assert _engineers(sessions, connector) == {"alice", "bob", "carol"}
    assert outcome.summary["team_add"] == 3


def test_a_failing_second_writer_leaves_nothing_of_the_import(
    make_connector, sync, sessions, settings, streamed, directory, monkeypatch
):
    """The second batch (the second connection's first) fails: the first connection's
    batch, written fine, is rolled back with it and the run fails."""
    backends = _written_by_backend(monkeypatch, fail_on=2)
    connector = make_connector(group_teams={"engineering": "Engineering"})
    outcome = sync(connector)
    if settings.is_sqlite:
        assert outcome.status == "succeeded" and backends == []
        return
    assert outcome.status == "failed" and "the writer's batch failed" in outcome.error
    assert len(set(backends)) == 2
    assert linked_users(sessions, connector) == {}
    assert _batch_events(sessions, connector) == []
    assert _engineers(sessions, connector) == set()
    assert get_run(sessions, outcome.run_id).status is SyncRunStatus.FAILED


def test_dry_run_writes_nothing_while_reading(make_connector, sync, sessions, streamed):
    connector = make_connector()
    outcome = sync(connector, dry_run=True)
    assert outcome.status == "planned" and streamed == []
    assert linked_users(sessions, connector) == {}


def test_values_that_copy_must_escape_arrive_intact(session, sessions, make_connector):
    """Backslashes, tabs and newlines in a stable id or a DN; a backslash in a name."""
    connector = make_connector()
    organisation = session.get_one(Organisation, connector.organisation_id)
    people = PeopleImport(
        session, organisation=organisation, connector=connector, actor=ldap_actor(connector)
    )
    odd = Create(
        external_id="id\\with\ttab\nand newline",
        dn="uid=o\\2c neil\t,ou=x",
        email="odd@example.org",
        name="Back\\slash Name",
    )
    plain = Create(external_id="plain", dn="uid=p", email="p@example.org", name="P")
    people.add([odd, plain])
    assert people.finish([odd, plain]) == 2
    session.commit()
    with sessions() as s:
        link = s.scalar(
            select(IdentityLink).where(
                IdentityLink.connector_id == connector.id,
                IdentityLink.external_id == odd.external_id,
            )
        )
        assert link is not None and link.source is Source.LDAP
        assert link.attributes == {"dn": odd.dn}
        assert link.user.name == odd.name and link.user.email == odd.email
        assert link.user.status is UserStatus.ACTIVE and link.user.role is Role.USER
        s.rollback()


def test_a_first_import_waiting_on_the_directory_lets_a_leaver_be_cut_off(
    make_connector, sessions, engine, settings, streamed, directory, client, monkeypatch
):
    """A first import whose directory stops answering after two pages, its creates so far
    written (PostgreSQL: by the writers, in transactions left open until the read ends): a
    SCIM deactivation in the same organisation goes through meanwhile, and on SQLite (which
    streams nothing) the write lock is free. The writers' open transactions hold their new
    rows (a create of the same email is answered 503 at once, without waiting for them, see
    tests/ldap/test_create_during_import.py) and key-share locks on the rows those point
    to: the organisation and the mapped teams, which only a FOR UPDATE (deleting them,
    a team decided whole by a SCIM group write) waits for; a person's lock does not. A guard:
    it passes before this branch too."""
    from tests.scim.payloads import okta_create_user, okta_deactivate
    from tests.support.no_wait import write_without_waiting
    from tests.support.parallel import in_thread
    from tests.support.slow_proxy import slow_proxy
    from tests.support.wait import wait_until
    from worker.directory_sync import run_sync

    monkeypatch.setattr("models.directory.read.MAX_WAITING", 1)  # plan from the first page on
    answering = threading.Event()
    answering.set()
    with slow_proxy(directory.slapd.url, delay=0.0, held=answering) as slow:
        connector = make_connector(server_urls=[slow], page_size=1)
        with sessions() as s:
            organisation = s.get_one(Organisation, connector.organisation_id)
            idp = {"Authorization": f"Bearer {factories.scim_token(s, organisation)}"}
            s.commit()
        leaver = client.post(
            "/scim/v2/Users", json=okta_create_user("leaver@elsewhere.example"), headers=idp
        )
        assert leaver.status_code == 201, leaver.text

        def held_after_two_pages(read: int) -> None:
            if read == 2:
                answering.clear()  # the directory stops answering

        syncing, out = in_thread(
            lambda: run_sync(
                sessions,
                settings,
                connector_id=connector.id,
                trigger="test",
                progress=held_after_two_pages,
            )
        )
        try:
            wait_until(lambda: not answering.is_set(), timeout=60, what="two pages read")
            if not settings.is_sqlite:
                wait_until(
                    lambda: writers_holding_users(sessions) > 0, timeout=60, what="creates written"
                )
            if settings.is_sqlite:
                write_without_waiting(engine, "organisations")  # nothing holds the write lock
            cut_off = client.patch(
                f"/scim/v2/Users/{leaver.json['id']}", json=okta_deactivate(), headers=idp
            )
            assert cut_off.status_code == 200, cut_off.text
            assert syncing.is_alive()  # still waiting on the directory
        finally:
            answering.set()
            syncing.join(60)
    assert "error" not in out, out
    assert out["result"].status == "succeeded", out["result"]
    _expect_stream(streamed, settings)
    assert sorted(linked_users(sessions, connector)) == ["alice", "bob", "carol", "dave"]
