"""Two deletes of one object at once compose as if one came after the other
(models/locked_rows.py): the first deletes it and audits the deletion, the later finds it gone,
answers not found (a 404) and writes nothing. Before, both read the row unlocked, both answered
success and both wrote a `*.deleted` audit event.

Each race is the admin API's path (the object read, then deleted) in two transactions
(tests/lifecycle/test_membership_races.Race): the first deletes and, on PostgreSQL, waits
until the second waits for the row, then commits. On SQLite the second begins only once the
first committed: the same serial end."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import audit_streams, directory_connectors, notification_hooks
from models.entities import (
    AuditEvent,
    AuditStream,
    DirectoryConnector,
    NotificationHook,
    Organisation,
)
from models.errors import NotFound
from models.settings import Settings
from tests.lifecycle.test_membership_races import Race, race  # noqa: F401 (the fixture)
from tests.support import factories as f


@dataclass(frozen=True)
class Deletable:
    entity: type[Any]
    action: str
    missing: str
    make: Callable[[Session, Settings, uuid.UUID], uuid.UUID]
    delete: Callable[[Session, uuid.UUID, uuid.UUID], None]


def _make_hook(session: Session, settings: Settings, organisation_id: uuid.UUID) -> uuid.UUID:
    hook, _ = f.make_hook(
        session, organisation_id, "http://127.0.0.1:9/hook", secret_key=settings.secret_key
    )
    return hook.id


def _delete_hook(session: Session, organisation_id: uuid.UUID, hook_id: uuid.UUID) -> None:
    hook = notification_hooks.get_hook(session, organisation_id, hook_id)
    notification_hooks.delete_hook(session, hook=hook, actor=f.SETUP)


def _make_stream(session: Session, settings: Settings, organisation_id: uuid.UUID) -> uuid.UUID:
    stream, _ = f.make_stream(
        session,
        organisation_id,
        "http://127.0.0.1:9/siem",
        secret_key=settings.secret_key,
        batch_size=10,
        from_beginning=False,
    )
    return stream.id


def _delete_stream(session: Session, organisation_id: uuid.UUID, stream_id: uuid.UUID) -> None:
    stream = audit_streams.get_stream(session, organisation_id, stream_id)
    audit_streams.delete_stream(session, stream=stream, actor=f.SETUP)


def _make_connector(session: Session, settings: Settings, organisation_id: uuid.UUID) -> uuid.UUID:
    connector = directory_connectors.create_connector(
        session,
        organisation=session.get_one(Organisation, organisation_id),
        fields={"name": "corp", "server_urls": ["ldap://127.0.0.1:389"], "base_dn": "dc=x"},
        bind_password=None,
        settings=settings,
        actor=f.SETUP,
    )
    return connector.id


def _delete_connector(
    session: Session, organisation_id: uuid.UUID, connector_id: uuid.UUID
) -> None:
    connector = directory_connectors.get_connector(session, organisation_id, connector_id)
    directory_connectors.delete_connector(session, connector=connector, actor=f.SETUP)


DELETABLES = {
    "notification hook": Deletable(
        NotificationHook,
        "hook.deleted",
        "notification hook not found",
        _make_hook,
        _delete_hook,
    ),
    "audit stream": Deletable(
        AuditStream,
        "audit_stream.deleted",
        "audit stream not found",
        _make_stream,
        _delete_stream,
    ),
    "directory connector": Deletable(
        DirectoryConnector,
        "directory_connector.deleted",
        "directory connector not found",
        _make_connector,
        _delete_connector,
    ),
}


@pytest.mark.parametrize("what", list(DELETABLES))
def test_two_deletes_at_once_delete_once_and_the_later_is_not_found(
    session: Session,
    settings: Settings,
    race: Race,  # noqa: F811
    what: str,
) -> None:
    deletable = DELETABLES[what]
    org = f.make_org(session)
    object_id = deletable.make(session, settings, org.id)
    session.commit()
    missing: list[NotFound] = []

    def delete(own: Session) -> None:
        deletable.delete(own, org.id, object_id)
        own.flush()

    def delete_or_missing(own: Session) -> None:
        try:
            delete(own)
        except NotFound as exc:
            missing.append(exc)

    race.run(delete, lambda own: None, delete_or_missing)
    assert [str(exc) for exc in missing] == [deletable.missing]
    session.expire_all()
    assert session.get(deletable.entity, object_id) is None
    deleted = session.scalars(
        select(AuditEvent).where(
            AuditEvent.organisation_id == org.id, AuditEvent.action == deletable.action
        )
    ).all()
    assert len(deleted) == 1
