"""What a SCIM read costs the database: a user read by id, by an `eq` filter or in a page is
one query once the token is remembered (the organisation's end-date attribute, which shapes
the answer, comes in each user's row; an empty answer needs it not)."""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session

from connectors.scim import casting
from models import row_writes
from models.actions import mass_change
from models.actions import scim as scim_actions
from models.base import new_id
from models.db import SessionFactory
from models.entities import AuditEvent, Organisation, ScimUser, User
from models.enums import Role, UserStatus
from tests.scim import payloads
from tests.scim.conftest import ScimClient
from tests.support import factories
from tests.support.sql_events import statements_sent
from webhooks.context import app_state

HR = "urn:example:params:scim:schemas:extension:hr:2.0:User"


def statements(app: Flask) -> AbstractContextManager[list[str]]:
    """The queries this thread sends through the app's engine meanwhile."""
    with app.app_context():
        return statements_sent(app_state().engine)


def _create(scim: ScimClient, n: int) -> str:
    email = f"lee{n}@example.com"
    made = scim.post("/Users", {"userName": email, "emails": [{"value": email}]})
    assert made.status_code == 201, made.json
    return str(made.json["id"])


def test_user_reads_are_one_query_each(scim: ScimClient, app: Flask) -> None:
    scim_id = _create(scim, 1)
    _create(scim, 2)
    reads = [
        f"/Users/{scim_id}",
        '/Users?filter=userName eq "lee1@example.com"',
        '/Users?filter=emails.value eq "lee2@example.com"',
        "/Users?startIndex=1&count=100",
        '/Users?filter=userName eq "nobody@example.com"',
    ]
    assert scim.get(reads[0]).status_code == 200  # the token is remembered from here on
    for path in reads:
        with statements(app) as seen:
            answer = scim.get(path)
        assert answer.status_code == 200, answer.json
        assert len(seen) == 1, (path, seen)


def test_an_end_date_is_shown_under_the_organisation_attribute(
    scim: ScimClient, session: Session, org: Organisation
) -> None:
    scim_actions.set_access_end_attribute(
        session, organisation=org, attribute=f"{HR}:lastDay", actor=factories.SETUP
    )
    session.commit()
    scim_id = _create(scim, 3)
    scim_user = session.get_one(ScimUser, uuid.UUID(scim_id))
    session.get_one(User, scim_user.user_id).access_ends_at = datetime(2027, 1, 31, 17, tzinfo=UTC)
    session.commit()
    for answer in (
        scim.get(f"/Users/{scim_id}").json,
        scim.get('/Users?filter=userName eq "lee3@example.com"').json["Resources"][0],
    ):
        assert answer[HR] == {"lastDay": "2027-01-31T17:00:00.000Z"}


def test_a_create_reads_the_organisation_settings_once(scim: ScimClient, app: Flask) -> None:
    """The two settings a create follows (approval, the end-date attribute) are read alone,
    never the organisation as an entity."""
    _create(scim, 4)  # the token is remembered from here on
    with statements(app) as seen:
        _create(scim, 5)
    # On PostgreSQL in the create's one statement (its look-ups folded into its write).
    reads = [s for s in seen if "organisation_settings" in s]
    assert len(reads) == 1, reads
    assert not [s for s in seen if "FROM organisations" in s], seen


def test_a_bad_end_date_is_refused_before_a_taken_user_name(
    scim: ScimClient, session: Session, org: Organisation
) -> None:
    """The end date is read under the organisation's attribute once the create's look-ups
    brought it: a bad one is still a 400 when the userName is also taken, and a good one is
    stored."""
    scim_actions.set_access_end_attribute(
        session, organisation=org, attribute=f"{HR}:lastDay", actor=factories.SETUP
    )
    session.commit()
    _create(scim, 10)
    body = {"userName": "lee10@example.com", HR: {"lastDay": "not a date"}}
    refused = scim.post("/Users", body)
    assert refused.status_code == 400, refused.json
    assert refused.json["scimType"] == "invalidValue"
    body = {"userName": "lee11@example.com", HR: {"lastDay": "2027-01-31T17:00:00Z"}}
    made = scim.post("/Users", {**body, "emails": [{"value": "lee11@example.com"}]})
    assert made.status_code == 201, made.json
    assert made.json[HR] == {"lastDay": "2027-01-31T17:00:00.000Z"}
    assert scim.post("/Users", {"userName": "LEE11@example.com"}).status_code == 409


def test_a_new_person_is_written_without_the_flush_and_answered_as_stored(
    scim: ScimClient, session: Session, org: Organisation, monkeypatch: Any
) -> None:
    """A create of a new person writes its rows with Core INSERTs (models.row_writes); its
    answer, built from the values written, is what a read of the stored rows gives, and
    its audit events are the flush's. Linking a person who exists takes the usual flush."""
    written: list[bool] = []

    def insert_new(*args: Any) -> bool:
        written.append(row_writes.insert_new(*args))
        return written[-1]

    monkeypatch.setattr(scim_actions, "insert_new", insert_new)
    body = {
        "userName": "kim@example.com",
        "name": {"givenName": "Kim", "familyName": "Lee"},
        "emails": [
            {"value": "kim@example.com", "type": "work", "primary": True},
            {"value": "kim@home.example", "type": "home"},
        ],
        "active": True,
    }
    made = scim.post("/Users", body)
    assert made.status_code == 201, made.json
    read = scim.get(f"/Users/{made.json['id']}")
    assert read.json == made.json
    assert read.headers["ETag"] == made.headers["ETag"]
    scim_user = session.get_one(ScimUser, uuid.UUID(made.json["id"]))
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.target_id == str(scim_user.user_id))
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    ).all()
    assert sorted(e.action for e in events) == [
        "identity.linked",
        "scim.user.created",
        "user.created",
    ]
    created = next(e for e in events if e.action == "scim.user.created")
    assert created.after == scim_actions.scim_snapshot(scim_user)
    assert created.request_id is not None and created.organisation_id == org.id

    factories.make_user(session, org, email="known@example.com")
    session.commit()
    linked = scim.post("/Users", {"userName": "known", "emails": [{"value": "known@example.com"}]})
    assert linked.status_code == 201, linked.json
    assert scim.get(f"/Users/{linked.json['id']}").json == linked.json
    assert written == [True]  # the link to a known person was flushed as before


def test_a_new_persons_rows_are_one_statement_on_postgresql(scim: ScimClient, app: Flask) -> None:
    """On PostgreSQL a create of a new person, in an organisation this process has created
    a person in before, is one statement: one INSERT of every row (its tables' INSERTs as
    CTEs) held to what the look-ups would find (the organisation's settings as the last
    create found them, the userName free, the email nobody's). SQLite looks up first and
    writes one INSERT per table."""
    _create(scim, 8)  # the token and the organisation's settings are remembered from here on
    with statements(app) as seen:
        _create(scim, 9)
    with app.app_context():
        sqlite = app_state().settings.is_sqlite
    writes = [s for s in seen if not s.startswith("SELECT")]
    if sqlite:
        assert len(writes) == 5 and len(seen) == 6, seen
        return
    assert len(seen) == 1, seen
    (write,) = writes
    assert write.startswith("WITH guard AS (SELECT") and "organisation_settings" in write
    for table in ("users", "identity_links", "scim_users", "scim_emails", "audit_events"):
        assert f"INSERT INTO {table} " in write


def test_a_create_whose_assumed_look_ups_do_not_hold_is_checked_and_made_as_usual(
    scim: ScimClient, session: Session, org: Organisation
) -> None:
    """A create's one statement writes nothing when what it assumed is not so (a userName
    taken, an email known, the organisation's settings changed since its last create); the
    create is then looked up and made as before: a 409, a link, a person waiting for
    approval, an end date under the new attribute, and each with only its own audit events."""
    _create(scim, 30)
    events = session.scalar(select(func.count()).select_from(AuditEvent))
    session.commit()  # SQLite: a session that read holds the write lock
    taken = scim.post("/Users", {"userName": "LEE30@example.com", "emails": [{"value": "x@y.z"}]})
    assert taken.status_code == 409 and taken.json["scimType"] == "uniqueness", taken.json
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == events
    session.commit()

    factories.make_user(session, org, email="known30@example.com")
    org.settings.approval_required = True
    session.commit()
    linked = scim.post(
        "/Users", {"userName": "known30", "emails": [{"value": "known30@example.com"}]}
    )
    assert linked.status_code == 201, linked.json
    waiting = _create(scim, 31)
    user_id = session.scalar(select(ScimUser.user_id).where(ScimUser.id == uuid.UUID(waiting)))
    assert session.get_one(User, user_id).status is UserStatus.PENDING
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.target_id == str(user_id))
    ).all()
    assert sorted(actions) == ["identity.linked", "scim.user.created", "user.created"]
    session.commit()

    scim_actions.set_access_end_attribute(
        session, organisation=org, attribute=f"{HR}:lastDay", actor=factories.SETUP
    )
    session.commit()
    body = {
        "userName": "lee32@example.com",
        "emails": [{"value": "lee32@example.com"}],
        HR: {"lastDay": "2027-01-31T17:00:00Z"},
    }
    made = scim.post("/Users", body)
    assert made.status_code == 201, made.json
    assert made.json[HR] == {"lastDay": "2027-01-31T17:00:00.000Z"}
    assert scim.get(f"/Users/{made.json['id']}").json == made.json


def test_creates_that_link_known_people_look_them_up_first(
    scim: ScimClient, app: Flask, session: Session, org: Organisation
) -> None:
    """Once a create's look-up finds the person known (or the userName taken), the next
    create of the organisation looks up first instead of writing on the assumption that
    did not hold for this one (an IdP importing people the organisation already has would
    otherwise pay a refused write before every look-up); a new person brings it back."""
    with app.app_context():
        sqlite = app_state().settings.is_sqlite  # no assumed creates: looks up always
    _create(scim, 40)
    for n in (41, 42):
        factories.make_user(session, org, email=f"known{n}@example.com")
    session.commit()
    for n in (41, 42):
        with statements(app) as seen:
            body = {"userName": f"known{n}", "emails": [{"value": f"known{n}@example.com"}]}
            assert scim.post("/Users", body).status_code == 201
        refused = [s for s in seen if s.startswith("WITH guard")]
        assert len(refused) == (1 if n == 41 and not sqlite else 0), seen
    _create(scim, 43)  # looked up first, found clean: the next assumes again
    with statements(app) as seen:
        _create(scim, 44)
    assert len(seen) == (6 if sqlite else 1), seen


def test_a_value_too_long_for_its_column_is_refused_not_cut(
    session: Session, org: Organisation
) -> None:
    """The rows' values go to PostgreSQL as JSON text assigned to their columns: a value
    longer than its column is refused as an INSERT of it would be, never silently cut."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite does not hold a string to its column's length")
    user = User(
        id=new_id(),
        organisation_id=org.id,
        name="x" * 201,
        role=Role.USER,
        status=UserStatus.ACTIVE,
    )
    user.set_email("long@example.com")
    session.add(user)
    with pytest.raises(DataError, match="too long"):
        row_writes.insert_new(session, (User,))


def test_hot_reads_run_as_prepared_statements_on_postgresql(
    scim: ScimClient, app: Flask, monkeypatch: Any
) -> None:
    """A get and a search of a shape seen before are planned once per connection
    (DATABASE_PREPARED_READS); a `sw` filter never is: a generic plan for `LIKE $1` cannot
    use the trigram indexes."""
    with app.app_context():
        if app_state().settings.is_sqlite:
            pytest.skip("SQLite has no server-side prepared statements")
    import psycopg

    prepared: list[tuple[str, bool]] = []
    execute = psycopg.Cursor.execute

    def spying(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        prepared.append((str(query), bool(kwargs.get("prepare"))))
        return execute(self, query, params, **kwargs)

    scim_id = _create(scim, 6)
    _create(scim, 7)
    monkeypatch.setattr(psycopg.Cursor, "execute", spying)
    for path in [
        f"/Users/{scim_id}",
        '/Users?filter=userName eq "lee6@example.com"',
        '/Users?filter=emails[type eq "work" and value eq "lee7@example.com"]',
        '/Users?filter=userName sw "lee6"',
        "/Users?startIndex=2&count=1",
    ]:
        before = len(prepared)
        answer = scim.get(path)
        assert answer.status_code == 200, answer.json
        reads = [p for q, p in prepared[before:] if q.lstrip().startswith("SELECT")]
        assert reads, path
        assert all(reads) is ("sw" not in path), (path, prepared[before:])


PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _deactivate(scim: ScimClient, scim_id: str) -> Any:
    body = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    return scim.patch(f"/Users/{scim_id}", body)


def test_a_deactivation_reads_the_person_once(scim: ScimClient, app: Flask) -> None:
    """The person comes locked with the SCIM user (one lock, one load): the access-end step
    does not read them again, and the write's audit events go in one statement."""
    scim_id = _create(scim, 8)
    with statements(app) as seen:
        answer = _deactivate(scim, scim_id)
    assert answer.status_code == 200, answer.json
    assert answer.json["active"] is False
    assert [s for s in seen if "FROM users" in s] == []
    assert len([s for s in seen if "INSERT INTO audit_events" in s]) == 1, seen


def test_a_profile_patch_writes_its_changes_in_one_flush(scim: ScimClient, app: Flask) -> None:
    """A PATCH that leaves the person active asks the gate for held changes without flushing
    what it has changed so far: its two audit events go in one statement, its SCIM row is
    updated once."""
    scim_id = _create(scim, 12)
    body = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Lee Twelve"}],
    }
    with statements(app) as seen:
        answer = scim.patch(f"/Users/{scim_id}", body)
    assert answer.status_code == 200 and answer.json["displayName"] == "Lee Twelve", answer.json
    assert len([s for s in seen if "INSERT INTO audit_events" in s]) == 1, seen
    assert len([s for s in seen if "UPDATE scim_users" in s]) == 1, seen


def test_a_scim_write_locks_the_person_with_the_user(
    sessions: SessionFactory, org: Organisation, scim: ScimClient
) -> None:
    """What lets the access-end step skip its re-read: while a SCIM write holds its user, the
    person's row is locked too (a schedule moving their date waits for it)."""
    scim_id = _create(scim, 9)
    with sessions() as writing, sessions() as other:
        if writing.get_bind().dialect.name != "postgresql":
            pytest.skip("SQLite locks the whole database for a write transaction")
        scim_user = scim_actions.get_scim_user(writing, org.id, scim_id, for_update=True)
        person = select(User.id).where(User.id == scim_user.user_id)
        # A row referring to the person (the gate's count in its own transaction) may be
        # written meanwhile: its foreign key check takes FOR KEY SHARE.
        assert other.scalar(person.with_for_update(read=True, key_share=True, nowait=True))
        with pytest.raises(OperationalError, match="could not obtain lock"):
            other.execute(person.with_for_update(nowait=True))
        other.rollback()
        writing.rollback()
        assert other.scalar(person.with_for_update(nowait=True)) == scim_user.user_id


def _driver_reads(monkeypatch: Any) -> list[str]:
    """The statements run straight through psycopg (models.db.driver_read) from now on."""
    from models import db

    seen: list[str] = []
    run = db._run_prepared_read

    def counting(connection: Any, sql: str, values: list[Any]) -> Any:
        seen.append(sql)
        return run(connection, sql, values)

    monkeypatch.setattr(db, "_run_prepared_read", counting)
    return seen


def test_hot_reads_answer_the_same_through_the_driver(
    scim: ScimClient, app: Flask, monkeypatch: Any
) -> None:
    """On PostgreSQL a get, an `eq` and a value-path search skip SQLAlchemy's execution
    layer when nothing watches its statements, and answer exactly what it would: every
    attribute a record carries (emails, groups, the extension, timestamps, active)."""
    with app.app_context():
        if app_state().settings.is_sqlite:
            pytest.skip("SQLite reads go through SQLAlchemy")
    made = scim.post("/Users", payloads.rfc7643_8_2_full_user("bjensen@example.com"))
    assert made.status_code == 201, made.json
    scim_id = made.json["id"]
    group = scim.post("/Groups", payloads.okta_create_group("Tour Guides"))
    added = scim.patch(
        f"/Groups/{group.json['id']}", payloads.okta_add_members((scim_id, "bjensen"))
    )
    assert added.status_code in (200, 204), added.json
    paths = [
        f"/Users/{scim_id}",
        '/Users?filter=userName eq "BJENSEN@example.com"',
        f'/Users?filter=externalId eq "{made.json["externalId"]}"',
        '/Users?filter=emails[type eq "work" and value eq "bjensen@example.com"]',
    ]
    through_sqlalchemy = {}
    with statements(app) as seen:  # a listener: SQLAlchemy runs every statement
        for path in paths:
            through_sqlalchemy[path] = scim.get(path).json
    assert seen
    driven = _driver_reads(monkeypatch)
    for path in paths:
        before = len(driven)
        answer = scim.get(path)
        assert answer.status_code == 200, answer.json
        assert len(driven) == before + 1, path
        assert answer.json == through_sqlalchemy[path]
    assert through_sqlalchemy[paths[0]]["groups"][0]["display"] == "Tour Guides"
    assert through_sqlalchemy[paths[1]]["totalResults"] == 1


def test_a_read_in_a_transaction_sees_its_own_writes(
    app: Flask, session: Session, monkeypatch: Any
) -> None:
    """A session in a transaction reads through it (never a pooled connection of its own),
    so a search after a write in the same transaction finds what it wrote."""
    from models.queries import scim as queries

    org = factories.make_org(session, "Own writes")
    session.commit()
    driven = _driver_reads(monkeypatch)
    fields = casting.scim_to_user_fields({"userName": "own@example.com"})
    scim_actions.create_scim_user(session, organisation=org, fields=fields, actor=factories.SETUP)
    session.flush()
    found = queries.search_users(
        session,
        org.id,
        queries.Search(filter='userName eq "own@example.com"', start=1, count=10),
    )
    assert [record.user_name for record in found.items] == ["own@example.com"]
    assert driven == []
    session.rollback()


def test_a_failed_driver_read_is_sqlalchemy_error_and_leaves_the_pool_sound(
    app: Flask, monkeypatch: Any
) -> None:
    """A statement PostgreSQL refuses raises SQLAlchemy's error (the web's handlers know it),
    and the connection goes back to the pool out of autocommit, usable."""
    from sqlalchemy import column, exc, select, table

    from models.db import PREPARED, driver_read

    with app.app_context():
        state = app_state()
        if state.settings.is_sqlite:
            pytest.skip("SQLite reads go through SQLAlchemy")
        state.engine.dispose()  # the pool then holds the one connection the read used
        missing = select(column("x")).select_from(table("no_such_table"))
        session = state.sessions(bind=state.autocommit_engine)
        with session, pytest.raises(exc.ProgrammingError):
            driver_read(session, missing.execution_options(**{PREPARED: True}), {})
        with state.engine.connect() as connection:
            assert connection.connection.driver_connection.autocommit is False
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1


def test_driver_reads_keep_one_cursor_per_pooled_connection(app: Flask, monkeypatch: Any) -> None:
    """Reads on the same pooled connection share its cursor; once the pool has replaced the
    connection (invalidated, as after a database restart), the next read has a cursor of the
    new connection and still answers."""
    from sqlalchemy import literal

    from models import db

    with app.app_context():
        state = app_state()
        if state.settings.is_sqlite:
            pytest.skip("SQLite reads go through SQLAlchemy")
        state.engine.dispose()  # the pool then holds the one connection the reads use
        cursors: list[Any] = []
        run = db._run_prepared_read

        def spying(cursor: Any, sql: str, values: list[Any]) -> Any:
            cursors.append(cursor)
            return run(cursor, sql, values)

        monkeypatch.setattr(db, "_run_prepared_read", spying)
        one = select(literal(1)).execution_options(**{db.PREPARED: True})
        with state.sessions(bind=state.autocommit_engine) as session:
            assert db.driver_read(session, one, {}) == [(1,)]
            assert db.driver_read(session, one, {}) == [(1,)]
            with state.engine.connect() as connection:
                connection.invalidate()
            assert db.driver_read(session, one, {}) == [(1,)]
        assert cursors[0] is cursors[1]
        assert cursors[2].connection is not cursors[0].connection


def test_a_deactivation_looks_for_what_the_person_holds_in_one_statement(
    scim: ScimClient, app: Flask
) -> None:
    """Keys, tokens, sent invitations, budgets and held changes: one EXISTS each, read with
    the user the write locked; a person who holds none of them (most) costs no look-up or
    UPDATE of each."""
    scim_id = _create(scim, 10)
    with statements(app) as seen:
        answer = _deactivate(scim, scim_id)
    assert answer.status_code == 200, answer.json
    holdings = ("api_tokens", "invitations", "budgets")
    looks = [s for s in seen if any(f" {table}" in s for table in holdings)]
    assert len(looks) == 1, looks
    assert "FROM scim_users" in looks[0] and looks[0].count("EXISTS") == 5, looks
    assert [s for s in seen if "virtual_api_keys" in s] == looks, seen


def test_a_create_asks_after_its_user_name_and_email_in_one_statement(
    scim: ScimClient, app: Flask
) -> None:
    """A new person: the organisation's settings, whether the userName is taken and whether
    someone has the email, together (linking a person who has it is
    tests/scim/test_users.py's); on PostgreSQL in the write itself."""
    _create(scim, 11)  # the token is remembered from here on
    with statements(app) as seen:
        _create(scim, 12)
    reads = [s for s in seen if "organisation_settings" in s]
    assert len(reads) == 1, reads
    for table in ("organisation_settings", "scim_users", "users"):
        assert f"FROM {table}" in reads[0], reads


def test_a_deactivation_reads_the_gate_settings_with_the_user(
    scim: ScimClient, app: Flask, session: Session, org: Organisation
) -> None:
    """A write loads the organisation's mass-change thresholds with its user: the gate does
    not read them again (and follows what they say: here, off)."""
    mass_change.set_thresholds(session, organisation=org, actor=factories.SETUP, enabled=False)
    session.commit()
    scim_id = _create(scim, 13)
    with statements(app) as seen:
        answer = _deactivate(scim, scim_id)
    assert answer.status_code == 200 and answer.json["active"] is False, answer.json
    assert [s for s in seen if s.startswith("SELECT mass_change")] == []
    assert [s for s in seen if "mass_change_gates" in s] == []  # off: nothing counted


def test_a_writes_load_runs_prepared_on_postgresql(
    scim: ScimClient, app: Flask, monkeypatch: Any
) -> None:
    """The read after a write's lock (its joins, the emails and groups folded into JSON) is
    planned once per connection."""
    with app.app_context():
        if app_state().settings.is_sqlite:
            pytest.skip("SQLite has no server-side prepared statements")
    import psycopg

    ran: list[tuple[str, bool]] = []
    execute = psycopg.Cursor.execute

    def spying(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        ran.append((str(query), bool(kwargs.get("prepare"))))
        return execute(self, query, params, **kwargs)

    scim_id = _create(scim, 14)
    monkeypatch.setattr(psycopg.Cursor, "execute", spying)
    assert _deactivate(scim, scim_id).status_code == 200
    loads = [prepared for sql, prepared in ran if sql.startswith("SELECT") and "scim_emails" in sql]
    assert loads == [True], ran
