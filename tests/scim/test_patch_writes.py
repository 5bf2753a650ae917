"""A SCIM PATCH's writes without SQLAlchemy's unit of work and execution layer
(models.change_writes, models.driver_writes) store what the flush would."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from models import driver_writes
from models.actions import lifecycle
from models.entities import (
    AuditEvent,
    Organisation,
    OutboxMessage,
    Revocation,
    ScimUser,
    User,
    VirtualApiKey,
)
from models.enums import KeyType, UserStatus
from tests.scim.conftest import ScimClient
from tests.support import factories
from webhooks import scim_documents
from webhooks.context import app_state


def test_a_deactivation_runs_its_writes_through_the_driver_as_sqlalchemy_would(
    app: Flask, scim: ScimClient, session: Session, monkeypatch: Any
) -> None:
    """On PostgreSQL, with prepared statements and nothing watching the engine's statements,
    a SCIM deactivation's lock, look-up and writes run straight through psycopg
    (models.driver_writes) and store what SQLAlchemy would: the answer is what a read gives,
    the revocation, audit events and outbox message are there."""
    with app.app_context():
        if app_state().settings.is_sqlite:
            pytest.skip("SQLite has no server-side prepared statements")
    made = scim.post(
        "/Users", {"userName": "dee@example.com", "emails": [{"value": "dee@example.com"}]}
    )
    assert made.status_code == 201, made.json
    direct: list[str] = []
    run = driver_writes.run_prepared

    def spying(connection: Any, sql: str, values: list[Any]) -> Any:
        direct.append(sql)
        return run(connection, sql, values)

    monkeypatch.setattr(driver_writes, "run_prepared", spying)
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    answer = scim.patch(f"/Users/{made.json['id']}", body)
    assert answer.status_code == 200 and answer.json["active"] is False, answer.json
    # Its lock, the user's read (rows, not entities: models.loaded_rows; it says the person
    # holds no key, token, invitation or budget), then the person's status, the revocation,
    # the audit events, outbox message and SCIM row together (models.change_writes).
    assert len(direct) == 3, direct
    # Each with PostgreSQL's own placeholders, numbered once per statement: psycopg converts
    # none of them again on each call (the combined write has more than 50 parameters).
    assert all("%(" not in sql and "$1" in sql for sql in direct), direct
    assert scim.get(f"/Users/{made.json['id']}").json == answer.json
    user_id = session.scalar(select(ScimUser.user_id).where(ScimUser.id == made.json["id"]))
    assert session.get_one(User, user_id).status is UserStatus.REVOKED
    assert session.scalar(select(Revocation.user_id)) == user_id
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.target_id == str(user_id))
    ).all()
    assert {"user.revoked", "scim.user.updated"} <= set(actions)
    message = session.scalars(select(OutboxMessage)).one()
    assert message.task == lifecycle.TASK_OPEN_REVIEW and message.attempts == 1
    revocation_id = session.scalar(select(Revocation.id))
    assert message.kwargs == {"revocation_id": str(revocation_id)}


def test_a_deactivation_revokes_the_keys_its_read_found(
    scim: ScimClient, session: Session, org: Organisation, keys_updates: list[str]
) -> None:
    """A person who holds keys (the read with the lock says so, whatever the policy) has the
    keys' UPDATE run as before: their own key revoked, the organisation key they made held
    for review (the default policy). One who holds none has no keys' UPDATE sent."""
    people = {}
    for name in ("kay", "nokey"):
        email = f"{name}@example.com"
        made = scim.post("/Users", {"userName": email, "emails": [{"value": email}]})
        assert made.status_code == 201, made.json
        people[name] = made.json["id"]
    kay = session.get_one(ScimUser, uuid.UUID(people["kay"])).user
    own = factories.make_key(session, org, owner=kay)
    held = factories.make_key(session, org, key_type=KeyType.ORGANISATION, created_by=kay)
    session.commit()
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    for name, scim_id in people.items():
        keys_updates.clear()
        answer = scim.patch(f"/Users/{scim_id}", body)
        assert answer.status_code == 200 and answer.json["active"] is False, answer.json
        assert len(keys_updates) == (name == "kay"), (name, keys_updates)
    session.expire_all()
    revoked = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "user.revoked", AuditEvent.target_id == str(kay.id)
        )
    ).one()
    assert revoked.after is not None and revoked.after["keys_revoked"] == [str(own.id)]
    assert session.get_one(VirtualApiKey, own.id).revoked
    assert not session.get_one(VirtualApiKey, held.id).revoked


@pytest.fixture
def keys_updates(session: Session, monkeypatch: Any) -> Iterator[list[str]]:
    """The keys' UPDATEs sent (at the driver on PostgreSQL, where the writes run past
    SQLAlchemy's execution layer; through the engine's events on SQLite)."""
    seen: list[str] = []

    def note(statement: str) -> None:
        if statement.lstrip().upper().startswith("UPDATE VIRTUAL_API_KEYS"):
            seen.append(statement)

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        note(statement)

    execute = psycopg.Cursor.execute

    def counting(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        note(str(query))
        return execute(cursor, query, *args, **kwargs)

    if session.get_bind().dialect.name != "sqlite":
        monkeypatch.setattr(psycopg.Cursor, "execute", counting)
        yield seen
        return
    event.listen(Engine, "before_cursor_execute", on_statement)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", on_statement)


def test_a_write_renders_its_users_document_once_for_its_answer(
    scim: ScimClient, monkeypatch: Any
) -> None:
    """A PATCH applies its operations to the user's content and renders the whole document
    (meta, version) once, for its answer; a PUT or DELETE without a condition renders none
    before it writes. The answer is what a read gives, and the conditions still hold."""
    made = scim.post(
        "/Users", {"userName": "rena@example.com", "emails": [{"value": "rena@example.com"}]}
    )
    assert made.status_code == 201, made.json
    path = f"/Users/{made.json['id']}"
    rendered: list[str] = []
    with_meta = scim_documents.with_meta

    def counting(doc: dict[str, Any], *args: Any) -> dict[str, Any]:
        rendered.append(doc["id"])
        return with_meta(doc, *args)

    monkeypatch.setattr(scim_documents, "with_meta", counting)
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Rena"}],
    }
    answer = scim.patch(path, body)
    assert answer.status_code == 200 and answer.json["displayName"] == "Rena", answer.json
    assert len(rendered) == 1, rendered
    stale = scim.patch(path, body, **{"If-Match": made.json["meta"]["version"]})
    assert stale.status_code == 412, stale.json
    current = answer.json["meta"]["version"]
    assert scim.patch(path, body, **{"If-Match": current}).status_code == 200
    rendered.clear()
    replaced = scim.put(path, {**made.json, "displayName": "Rena P"})
    assert replaced.status_code == 200 and len(rendered) == 1, rendered
    assert scim.get(path).json == replaced.json
    rendered.clear()
    assert scim.delete(path).status_code == 204 and rendered == []


@pytest.mark.parametrize("active", [True, False])
@pytest.mark.parametrize(
    ("path", "value", "attribute"),
    [
        ('phoneNumbers[type eq "mobile"].value', "+33 1", "phoneNumbers"),
        ('addresses[type eq "work"].locality', "Nice", "addresses"),
        ("phoneNumbers.type", "work", "phoneNumbers"),
    ],
)
def test_a_patch_inside_a_multi_valued_attribute_is_stored_and_audited(
    scim: ScimClient, session: Session, active: bool, path: str, value: str, attribute: str
) -> None:
    """A PATCH of a part of a phone number or address (kept in the JSON column) is stored
    and audited, for an active user as for a disabled one. It changed the stored value in
    place, so the change went unseen: a disabled user's answer showed the new value while
    the database kept the old (found by tests/scim/test_differential_user_writes.py)."""
    made = scim.post(
        "/Users",
        {
            "userName": "phil@example.com",
            "active": active,
            "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}],
            "addresses": [{"locality": "Lyon", "type": "work"}],
        },
    )
    assert made.status_code == 201, made.json
    path_of_user = f"/Users/{made.json['id']}"
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": path, "value": value}],
    }
    answer = scim.patch(path_of_user, body)
    assert answer.status_code == 200, answer.json
    assert scim.get(path_of_user).json[attribute] == answer.json[attribute]
    assert answer.json[attribute] != made.json[attribute]
    audited = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "scim.user.updated")
    ).all()
    assert any(attribute in str(event.after) for event in audited if event.before != event.after)
