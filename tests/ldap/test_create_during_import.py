"""A person created over SCIM or the admin API while a first directory import is being
read, held between two pages. On PostgreSQL the import writes its creates as it reads, in
transactions that commit only once the read is complete and the plan checked. Each create
must come out as if it ran before or after the whole import, and the import must complete:

- an email the import has written (PostgreSQL): the create waited on the unique index until
  the lock timeout and answered 503 five seconds later; now it is answered at once, 503 with
  a Retry-After and nothing written, and sent again once the import has committed it is
  answered as after the import: the IdP's create links the person the import made, the
  admin's is a 409. On SQLite the import has written nothing yet: the create goes through,
  and the import refuses that person as existing (create, then import);
- an email the import has not read yet: the create goes through, and the import refuses that
  person as existing (create, then import). On PostgreSQL the import failed, whole, on the
  email's unique key when it came to write that person.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select

from models.entities import DirectoryConnector, Organisation, ScimUser, User
from models.enums import Role
from tests.ldap.conftest import get_run, linked_users, writers_holding_users
from tests.scim.payloads import okta_create_user
from tests.support import factories
from tests.support.parallel import in_thread
from tests.support.wait import wait_until
from worker.directory_sync import SyncOutcome, run_sync


@pytest.fixture
def streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of one person, planned from the first page on: the writers start at once."""
    monkeypatch.setattr("worker.directory_create_stream.BATCH", 1)
    monkeypatch.setattr("models.directory.read.MAX_WAITING", 1)


@contextmanager
def _held_after_two_pages(
    sessions: Any, settings: Any, connector: DirectoryConnector
) -> Iterator[dict[str, Any]]:
    """A first import of alice, bob, carol and dave (a page each) held once alice and bob
    are read (on PostgreSQL, written by the two writers, uncommitted); let go at the end of
    the block, and its outcome in the dict's "result"."""
    held, go_on = threading.Event(), threading.Event()

    def held_after_two_pages(read: int) -> None:
        if read == 2:
            held.set()
            assert go_on.wait(120), "the test never let the import go on"

    importing, out = in_thread(
        lambda: run_sync(
            sessions,
            settings,
            connector_id=connector.id,
            trigger="test",
            progress=held_after_two_pages,
        )
    )
    try:
        assert held.wait(120), "the import never read two pages"
        if not settings.is_sqlite:
            wait_until(lambda: writers_holding_users(sessions) == 2, what="alice, bob written")
        yield out
        assert importing.is_alive()  # still held between its pages
    finally:
        go_on.set()
        importing.join(120)
    assert "error" not in out, out


def _credentials(sessions: Any, connector: DirectoryConnector) -> tuple[dict, dict]:
    """The Authorization headers of the organisation's IdP (SCIM) and of an admin."""
    with sessions() as s:
        organisation = s.get_one(Organisation, connector.organisation_id)
        idp = {"Authorization": f"Bearer {factories.scim_token(s, organisation)}"}
        admin = factories.make_user(s, organisation, email="root@corp.test", role=Role.ORG_ADMIN)
        auth = {"Authorization": f"Bearer {factories.admin_token(s, organisation, admin)}"}
        s.commit()
    return idp, auth


def _refused(sessions: Any, outcome: SyncOutcome) -> list[str]:
    """What the run's apply refused, each said as its message."""
    plan = get_run(sessions, outcome.run_id).plan or {}
    return sorted(error["message"] for error in plan.get("apply_errors", []))


def _people(sessions: Any, connector: DirectoryConnector, email: str) -> int:
    with sessions() as s:
        found = s.scalar(
            select(func.count())
            .select_from(User)
            .where(User.organisation_id == connector.organisation_id, User.email_key == email)
        )
        s.rollback()
    return int(found or 0)


def _linked_to_scim(sessions: Any, connector: DirectoryConnector, email: str) -> bool:
    """Whether the person with this email is the one SCIM user's."""
    with sessions() as s:
        linked = s.scalar(
            select(func.count())
            .select_from(ScimUser)
            .join(User, User.id == ScimUser.user_id)
            .where(User.organisation_id == connector.organisation_id, User.email_key == email)
        )
        s.rollback()
    return linked == 1


def _scim_users(sessions: Any, connector: DirectoryConnector) -> int:
    with sessions() as s:
        found = s.scalar(
            select(func.count())
            .select_from(ScimUser)
            .where(ScimUser.organisation_id == connector.organisation_id)
        )
        s.rollback()
    return int(found or 0)


def test_a_create_of_an_email_the_import_holds_is_answered_at_once(
    make_connector, sessions, settings, directory, client, streamed
):
    connector = make_connector(page_size=1)
    idp, auth = _credentials(sessions, connector)
    alice, bob = (f"{uid}@{directory.domain}" for uid in ("alice", "bob"))
    with _held_after_two_pages(sessions, settings, connector) as out:
        by_scim = client.post("/scim/v2/Users", json=okta_create_user(alice), headers=idp)
        by_admin = client.post(
            "/api/v1/users", json={"email": bob, "name": "Bob", "role": "USER"}, headers=auth
        )

    outcome = out["result"]
    assert outcome.status == "succeeded", outcome
    if settings.is_sqlite:  # create, then import
        assert (by_scim.status_code, by_admin.status_code) == (201, 201)
        assert sorted(linked_users(sessions, connector)) == ["carol", "dave"]
        assert _refused(sessions, outcome) == [f"{alice} exists already", f"{bob} exists already"]
    else:  # not now; sent again: import, then create
        for answer in (by_scim, by_admin):
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"] == "30"
        assert by_scim.json["status"] == "503"
        assert by_admin.json["title"] == "busy"
        assert sorted(linked_users(sessions, connector)) == ["alice", "bob", "carol", "dave"]
        assert _scim_users(sessions, connector) == 0

        again = client.post("/scim/v2/Users", json=okta_create_user(alice), headers=idp)
        assert again.status_code == 201, again.text
        assert _linked_to_scim(sessions, connector, alice)
        admin_again = client.post(
            "/api/v1/users", json={"email": bob, "name": "Bob", "role": "USER"}, headers=auth
        )
        assert admin_again.status_code == 409, admin_again.text
    assert (_people(sessions, connector, alice), _people(sessions, connector, bob)) == (1, 1)


def test_a_create_of_an_email_the_import_has_not_read_yet_is_refused_by_the_import(
    make_connector, sessions, settings, directory, client, streamed
):
    connector = make_connector(page_size=1)
    idp, _ = _credentials(sessions, connector)
    dave = f"dave@{directory.domain}"
    with _held_after_two_pages(sessions, settings, connector) as out:
        by_scim = client.post("/scim/v2/Users", json=okta_create_user(dave), headers=idp)
        assert by_scim.status_code == 201, by_scim.text

    outcome = out["result"]
    assert outcome.status == "succeeded", outcome
    assert sorted(linked_users(sessions, connector)) == ["alice", "bob", "carol"]
    assert _refused(sessions, outcome) == [f"{dave} exists already"]
    assert _people(sessions, connector, dave) == 1 and _scim_users(sessions, connector) == 1
