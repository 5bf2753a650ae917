"""A change of a notification hook, an audit stream or a directory connector at once with its
delete, or with another change, composes as if one came after the other
(models/locked_rows.py, taken first by every update and rotation).

- Delete, then a change: the change finds the object gone, answers not found (a 404) and
  writes nothing. Before, it read the row unlocked and its UPDATE found none on PostgreSQL:
  StaleDataError, a 500.
- Two changes: the later reads the earlier's result, keeps both, and its audit event's
  `before` is the earlier's `after`. Before, it read the row unlocked: it audited a stale
  `before`, and wrote over what it merged into (a connector's safety policy, a hook's
  signing secrets) with the earlier's change lost.

Each race is the admin API's path (the object read, then changed) in two transactions
(tests/lifecycle/test_membership_races.Race): the first acts and, on PostgreSQL, waits until
the second waits for the row, then commits. On SQLite the second begins only once the first
committed: the same serial end."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import audit_streams, directory_connectors, notification_hooks
from models.actor import Actor
from models.entities import AuditEvent, AuditStream, DirectoryConnector, NotificationHook
from models.enums import Source
from models.errors import NotFound
from models.settings import Settings
from tests.lifecycle.test_delete_races import DELETABLES
from tests.lifecycle.test_membership_races import Race, race  # noqa: F401 (the fixture)
from tests.support import factories as f
from tests.support.factories import LOOPBACK

FIRST = Actor(Source.ADMIN, "admin:first@example.com")
SECOND = Actor(Source.ADMIN, "admin:second@example.com")

# (session, settings, organisation id, object id, actor): the admin API's path
Change = Callable[[Session, Settings, uuid.UUID, uuid.UUID, Actor], None]


@dataclass(frozen=True)
class Changeable:
    deletable: str  # the key in DELETABLES: how it is made and deleted
    action: str
    first: Change
    second: Change
    both_kept: Callable[[Any], bool]


def _hook(session: Session, organisation_id: uuid.UUID, hook_id: uuid.UUID) -> NotificationHook:
    return notification_hooks.get_hook(session, organisation_id, hook_id)


def _rename_hook(
    session: Session, settings: Settings, org_id: uuid.UUID, hook_id: uuid.UUID, actor: Actor
) -> None:
    hook = _hook(session, org_id, hook_id)
    notification_hooks.update_hook(
        session, hook=hook, actor=actor, url_policy=LOOPBACK, name="renamed"
    )


def _subscribe_hook(
    session: Session, settings: Settings, org_id: uuid.UUID, hook_id: uuid.UUID, actor: Actor
) -> None:
    hook = _hook(session, org_id, hook_id)
    notification_hooks.update_hook(
        session, hook=hook, actor=actor, url_policy=LOOPBACK, events=["review.opened"]
    )


def _rotate_hook(
    session: Session, settings: Settings, org_id: uuid.UUID, hook_id: uuid.UUID, actor: Actor
) -> None:
    hook = _hook(session, org_id, hook_id)
    notification_hooks.rotate_secret(
        session, hook=hook, secret_key=settings.secret_key, actor=actor
    )


def _stream(session: Session, organisation_id: uuid.UUID, stream_id: uuid.UUID) -> AuditStream:
    return audit_streams.get_stream(session, organisation_id, stream_id)


def _rename_stream(
    session: Session, settings: Settings, org_id: uuid.UUID, stream_id: uuid.UUID, actor: Actor
) -> None:
    stream = _stream(session, org_id, stream_id)
    audit_streams.update_stream(
        session, stream=stream, actor=actor, url_policy=LOOPBACK, name="renamed"
    )


def _resize_stream(
    session: Session, settings: Settings, org_id: uuid.UUID, stream_id: uuid.UUID, actor: Actor
) -> None:
    stream = _stream(session, org_id, stream_id)
    audit_streams.update_stream(
        session, stream=stream, actor=actor, url_policy=LOOPBACK, batch_size=77
    )


def _connector_threshold(kind: str, count: int) -> Change:
    def change(
        session: Session,
        settings: Settings,
        org_id: uuid.UUID,
        connector_id: uuid.UUID,
        actor: Actor,
    ) -> None:
        connector = directory_connectors.get_connector(session, org_id, connector_id)
        directory_connectors.update_connector(
            session,
            connector=connector,
            fields={"safety": {"thresholds": {kind: {"count": count}}}},
            bind_password=None,
            settings=settings,
            actor=actor,
        )

    return change


def _both_thresholds(connector: DirectoryConnector) -> bool:
    thresholds = connector.safety["thresholds"]
    return bool(thresholds["revoke"]["count"] == 7 and thresholds["demote"]["count"] == 9)


def _two_new_secrets(hook: NotificationHook) -> bool:
    return len(notification_hooks.active_secret_entries(hook)) == 3


CHANGEABLES = {
    "notification hook": Changeable(
        "notification hook",
        "hook.updated",
        _rename_hook,
        _subscribe_hook,
        lambda hook: hook.name == "renamed" and hook.events == ["review.opened"],
    ),
    "notification hook secret": Changeable(
        "notification hook", "hook.secret_rotated", _rotate_hook, _rotate_hook, _two_new_secrets
    ),
    "audit stream": Changeable(
        "audit stream",
        "audit_stream.updated",
        _rename_stream,
        _resize_stream,
        lambda stream: stream.name == "renamed" and stream.batch_size == 77,
    ),
    "directory connector": Changeable(
        "directory connector",
        "directory_connector.updated",
        _connector_threshold("revoke", 7),
        _connector_threshold("demote", 9),
        _both_thresholds,
    ),
}


def _events(session: Session, organisation_id: uuid.UUID, action: str) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent).where(
                AuditEvent.organisation_id == organisation_id, AuditEvent.action == action
            )
        )
    )


@pytest.mark.parametrize("what", list(CHANGEABLES))
def test_a_change_after_a_delete_at_once_is_not_found_and_writes_nothing(
    session: Session,
    settings: Settings,
    race: Race,  # noqa: F811
    what: str,
) -> None:
    changeable = CHANGEABLES[what]
    deletable = DELETABLES[changeable.deletable]
    org = f.make_org(session)
    object_id = deletable.make(session, settings, org.id)
    session.commit()
    missing: list[NotFound] = []

    def delete(own: Session) -> None:
        deletable.delete(own, org.id, object_id)
        own.flush()

    def change_or_missing(own: Session) -> None:
        try:
            changeable.second(own, settings, org.id, object_id, SECOND)
            own.flush()
        except NotFound as exc:
            missing.append(exc)

    race.run(delete, lambda own: None, change_or_missing)
    assert [str(exc) for exc in missing] == [deletable.missing]
    session.expire_all()
    assert session.get(deletable.entity, object_id) is None
    assert _events(session, org.id, changeable.action) == []
    assert len(_events(session, org.id, deletable.action)) == 1


@pytest.mark.parametrize("what", list(CHANGEABLES))
def test_two_changes_at_once_keep_both_and_chain_their_audit_events(
    session: Session,
    settings: Settings,
    race: Race,  # noqa: F811
    what: str,
) -> None:
    changeable = CHANGEABLES[what]
    deletable = DELETABLES[changeable.deletable]
    org = f.make_org(session)
    object_id = deletable.make(session, settings, org.id)
    session.commit()

    def first(own: Session) -> None:
        changeable.first(own, settings, org.id, object_id, FIRST)
        own.flush()

    def second(own: Session) -> None:
        changeable.second(own, settings, org.id, object_id, SECOND)
        own.flush()

    race.run(first, lambda own: None, second)
    session.expire_all()
    assert changeable.both_kept(session.get_one(deletable.entity, object_id))
    events = {event.actor: event for event in _events(session, org.id, changeable.action)}
    assert set(events) == {str(FIRST), str(SECOND)}
    earlier, later = events[str(FIRST)], events[str(SECOND)]
    if changeable.action == "hook.secret_rotated":  # no before: the secrets the later kept
        assert earlier.after is not None and later.after is not None
        assert set(earlier.after["secret_ids"]) < set(later.after["secret_ids"])
    else:
        assert later.before == earlier.after
