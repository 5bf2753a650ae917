"""A request the database cannot serve in time (another writer holds the embedded database
past the busy timeout, a lock timeout on PostgreSQL) is answered 503 with Retry-After in its
protocol's format, keeps nothing, and succeeds when sent again; a database bug stays a 500."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs
from werkzeug.test import TestResponse

from models.access import Viewer
from models.actions import invitations
from models.db import is_transient, make_engine, make_session_factory
from models.entities import Organisation, ScimUser, User
from models.enums import Role
from models.migrate import upgrade
from models.settings import Settings
from tests.events.conftest import configure, generic, signed
from tests.support import factories as f
from tests.support.net import refused_port

SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
IDENTITY_HEADER = "X-Odock-Verified-Email"
INVITEE = "invitee@example.com"


@pytest.fixture
def embedded(tmp_path: Path, settings: Settings) -> Iterator[tuple[Settings, dict[str, str]]]:
    """Settings on an embedded database of this test's own, waiting 0.2 s for a writer, and
    the headers of its SCIM and admin tokens."""
    database = tmp_path / "busy.sqlite3"
    own = settings.model_copy(
        update={"database_url": f"sqlite:///{database}", "sqlite_busy_timeout": 0.2}
    )
    engine = make_engine(own)
    upgrade(engine)
    with make_session_factory(engine)() as session:
        org = f.make_org(session)
        admin = f.make_user(session, org, role=Role.ORG_ADMIN)
        tokens = {"scim": f.scim_token(session, org), "admin": f.admin_token(session, org, admin)}
        session.commit()
    yield own, tokens
    engine.dispose()


def scim_users(settings: Settings) -> int:
    engine = make_engine(settings)
    with make_session_factory(engine)() as session:
        count = len(session.scalars(select(ScimUser.id)).all())
    engine.dispose()
    return count


def test_a_write_the_embedded_database_cannot_take_in_time_is_503_and_kept_nowhere(apps, embedded):
    own, tokens = embedded
    client = apps.for_settings(own).test_client()
    scim = {"Authorization": f"Bearer {tokens['scim']}"}
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    body = {"schemas": [SCIM_USER], "userName": "ada@example.com", "active": True}
    invite = {"email": "bob@example.com"}

    writer = sqlite3.connect(own.database_url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        refused = client.post("/scim/v2/Users", json=body, headers=scim)
        refused_admin = client.post("/api/v1/invitations", json=invite, headers=admin)
    finally:
        writer.execute("ROLLBACK")
        writer.close()

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.json["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert refused.json["status"] == "503"
    assert refused_admin.status_code == 503
    assert refused_admin.mimetype == "application/problem+json"
    assert refused_admin.headers["Retry-After"] == "1"
    assert refused_admin.json["title"] == "busy"
    assert scim_users(own) == 0

    assert client.post("/scim/v2/Users", json=body, headers=scim).status_code == 201
    assert client.post("/api/v1/invitations", json=invite, headers=admin).status_code == 201
    assert scim_users(own) == 1


def test_a_locked_embedded_database_is_transient_and_a_missing_table_is_not(tmp_path: Path):
    database = tmp_path / "plain.sqlite3"
    holder = sqlite3.connect(database, isolation_level=None)
    waiter = sqlite3.connect(database, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as locked:
        waiter.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as bug:
        waiter.execute("SELECT * FROM no_such_table")
    holder.execute("ROLLBACK")
    assert is_transient(OperationalError("BEGIN IMMEDIATE", {}, locked.value))
    assert not is_transient(OperationalError("SELECT", {}, bug.value))


def test_a_lock_timeout_on_postgresql_is_transient(engine, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's lock timeout (the embedded case is the test above)")
    with engine.connect() as holder, engine.connect() as waiter:
        holder.execute(text("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE"))
        waiter.execute(text("SET lock_timeout = '50ms'"))
        with pytest.raises(OperationalError) as timed_out:
            waiter.execute(text("SELECT count(*) FROM audit_events"))
        assert is_transient(timed_out.value)
        holder.rollback()


def test_the_idp_receiver_and_the_enrollment_page_are_503_with_retry_after_while_locked(
    apps, embedded
):
    own, _ = embedded
    own = own.model_copy(update={"enrollment_identity_header": IDENTITY_HEADER})
    engine = make_engine(own)
    with make_session_factory(engine)() as session:
        org = session.scalars(select(Organisation)).one()
        admin = session.scalars(select(User)).one()
        hooked = configure(session, own, org)
        token = invitations.invite(
            session,
            viewer=Viewer.for_user(admin),
            email=INVITEE,
            role=Role.USER,
            actor=f.SETUP,
            secret_key=own.secret_key,
        ).token
        session.commit()
    engine.dispose()
    client = apps.for_settings(own).test_client()
    signed_in = {IDENTITY_HEADER: INVITEE}
    page = client.get(f"/enroll/{token}", headers=signed_in)
    form = {"name": "Ina", "form_key": re.search(r'name="form_key" value="(\w+)"', page.text)[1]}

    def deliver() -> TestResponse:
        payload = generic("user.deactivated", user={"email": "nobody@example.com"})
        body, headers = signed(hooked.signing_secret, payload)
        return client.post(hooked.events_url, data=body, headers=headers)

    def accept() -> TestResponse:
        return client.post(f"/enroll/{token}", data=form, headers=signed_in)

    writer = sqlite3.connect(own.database_url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        refused_delivery, refused_accept = deliver(), accept()
    finally:
        writer.execute("ROLLBACK")
        writer.close()

    assert refused_delivery.status_code == 503
    assert refused_delivery.mimetype == "application/problem+json"
    assert refused_delivery.headers["Retry-After"] == "1"
    assert refused_accept.status_code == 503 and refused_accept.mimetype == "text/html"
    assert 'data-kind="unavailable"' in refused_accept.text
    assert refused_accept.headers["Retry-After"] == "1"
    assert deliver().status_code == 202
    assert accept().status_code == 200


def test_the_odock_push_api_is_503_with_retry_after_while_locked_as_its_document_says(
    apps, embedded
):
    from models.actions import tokens as token_actions
    from models.enums import TokenScope
    from tests.support.odock.contract import violations

    own, _ = embedded
    engine = make_engine(own)
    with make_session_factory(engine)() as session:
        org = session.scalars(select(Organisation)).one()
        odock = token_actions.create_token(
            session, organisation=org, scope=TokenScope.ODOCK, actor=f.SETUP
        ).secret
        session.commit()
    engine.dispose()
    client = apps.for_settings(own).test_client()
    auth = {"Authorization": f"Bearer {odock}"}
    key = {"type": "ORGANISATION", "name": "ci", "version": 1}
    paths = client.get("/odock/v1/openapi.json").get_json()["paths"]

    writer = sqlite3.connect(own.database_url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        refused = {
            ("/keys/{id}", "put"): client.put(f"/odock/v1/keys/{uuid4()}", json=key, headers=auth),
            ("/usage", "post"): client.post("/odock/v1/usage", json={"records": []}, headers=auth),
        }
    finally:
        writer.execute("ROLLBACK")
        writer.close()

    for (path, method), response in refused.items():
        assert (response.status_code, response.headers.get("Retry-After")) == (503, "1"), path
        documented = paths[path][method]["responses"].get("503")
        assert documented is not None and "Retry-After" in documented["headers"], path
        schema = documented["content"]["application/problem+json"]["schema"]
        assert violations(schema, response.get_json()) == [], response.get_json()
    assert client.put(f"/odock/v1/keys/{uuid4()}", json=key, headers=auth).status_code == 200


def busy_logged(logs: list[dict]) -> dict:
    (entry,) = [entry for entry in logs if entry["event"] == "request.database_busy"]
    return entry


def test_a_busy_embedded_database_is_logged_with_what_sqlite_said(apps, embedded):
    own, tokens = embedded
    client = apps.for_settings(own).test_client()
    body = {"schemas": [SCIM_USER], "userName": "ada@example.com", "active": True}
    writer = sqlite3.connect(own.database_url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        with capture_logs() as logs:
            refused = client.post(
                "/scim/v2/Users", json=body, headers={"Authorization": f"Bearer {tokens['scim']}"}
            )
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert refused.status_code == 503
    entry = busy_logged(logs)
    assert entry["route"] == "/scim/v2/Users"
    assert (entry["error_class"], entry["driver_error"]) == (
        "OperationalError",
        "sqlite3.OperationalError",
    )
    assert entry["message"] == "database is locked" and "sqlstate" not in entry
    assert tokens["scim"] not in repr(logs) and "ada@example.com" not in repr(logs)


def test_a_lock_timeout_on_postgresql_is_logged_with_its_sqlstate_and_lock(
    apps, settings, session, engine, database_url
):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's lock timeout (the embedded case is the test above)")
    org = f.make_org(session)
    secret = f.scim_token(session, org)
    session.commit()
    client = apps.for_settings(settings.model_copy(update={"web_database_lock_timeout": 0.2}))
    body = {"schemas": [SCIM_USER], "userName": "ada@example.com", "active": True}
    with engine.connect() as holder:
        holder.execute(text("LOCK TABLE scim_users IN ACCESS EXCLUSIVE MODE"))
        with capture_logs() as logs:
            refused = client.test_client().post(
                "/scim/v2/Users", json=body, headers={"Authorization": f"Bearer {secret}"}
            )
        holder.rollback()
    assert refused.status_code == 503, refused.text
    entry = busy_logged(logs)
    assert (entry["error_class"], entry["driver_error"], entry["sqlstate"]) == (
        "OperationalError",
        "psycopg.errors.LockNotAvailable",
        "55P03",
    )
    assert entry["message"] == "canceling statement due to lock timeout"
    assert "scim_users" in entry["statement"]
    assert secret not in repr(logs) and "ada@example.com" not in repr(logs)


def test_a_database_that_refuses_the_connection_is_logged_with_the_drivers_message(
    apps, settings, database_url
):
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL server refusing (SQLite opens a file)")
    with refused_port() as port:
        url = make_url(database_url).set(port=port).render_as_string(hide_password=False)
        client = apps.for_settings(settings.model_copy(update={"database_url": url}))
        with capture_logs() as logs:
            refused = client.test_client().get(
                "/scim/v2/Users", headers={"Authorization": "Bearer odk_scim_nothing"}
            )
    assert refused.status_code == 503, refused.text
    entry = busy_logged(logs)
    assert (entry["error_class"], entry["driver_error"]) == (
        "OperationalError",
        "psycopg.OperationalError",
    )
    assert "connection" in entry["message"] and "sqlstate" not in entry
    assert "odk_scim_nothing" not in repr(logs)
