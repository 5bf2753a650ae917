"""models.change_writes: a few plain changes written with Core statements leave the rows and
the session as the flush would; anything else is left to the flush."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from models import audit, change_writes, key_changes, outbox
from models.actions import lifecycle
from models.base import new_row
from models.entities import AuditEvent, KeyCutoff, OutboxMessage, Revocation, Team, User
from models.enums import Source, UserStatus
from tests.support import factories

KINDS = (AuditEvent, OutboxMessage, Revocation)


@pytest.fixture
def flushes(session: Session, monkeypatch: Any) -> list[int]:
    """How many times the session's flush ran with something to write."""
    ran: list[int] = []
    flush = session.flush

    def counting(*args: Any, **kwargs: Any) -> None:
        if session.new or session.dirty or session.deleted:
            ran.append(1)
        flush(*args, **kwargs)

    monkeypatch.setattr(session, "flush", counting)
    return ran


def test_plain_changes_are_written_without_the_flush(session: Session, flushes: list[int]) -> None:
    org = factories.make_org(session)
    user = factories.make_user(session, org, email="ann@example.com")
    session.commit()
    user.name = "Ann Changed"
    user.status = UserStatus.REVOKED
    event = audit.record(
        session,
        actor=factories.SETUP,
        organisation_id=org.id,
        action="test.changed",
        target_type="user",
        target_id=user.id,
        after={"name": "Ann Changed"},
    )
    message = outbox.enqueue(session, "test.task", eager=True, user_id=str(user.id))
    flushes.clear()
    change_writes.flush_changes(session, KINDS)
    assert flushes == []
    assert not (session.new or session.dirty or session.deleted)
    assert isinstance(message.id, int)
    assert outbox.take_eager_messages(session) == [message]  # persistent: published at commit
    session.commit()
    session.expunge_all()
    stored = session.get_one(User, user.id)
    assert (stored.name, stored.status) == ("Ann Changed", UserStatus.REVOKED)
    assert session.get_one(AuditEvent, event.id).after == {"name": "Ann Changed"}
    stored_message = session.get_one(OutboxMessage, message.id)
    assert stored_message.kwargs == {"user_id": str(user.id)}
    assert stored_message.dispatched_at is not None and stored_message.attempts == 1


def test_anything_else_is_flushed(session: Session, flushes: list[int]) -> None:
    org = factories.make_org(session)
    user = factories.make_user(session, org, email="bo@example.com")
    session.commit()
    team = Team(organisation_id=org.id, name="Not a plain kind", name_key="not a plain kind")
    session.add(team)
    flushes.clear()
    change_writes.flush_changes(session, KINDS)
    assert flushes == [1]
    session.delete(team)
    change_writes.flush_changes(session, KINDS)
    assert flushes == [1, 1]
    user.name = "Bo Nested"
    with session.begin_nested():  # a savepoint: its rollback must forget what it wrote
        change_writes.flush_changes(session, KINDS)
    assert flushes == [1, 1, 1]
    session.commit()
    assert session.scalar(select(User.name).where(User.id == user.id)) == "Bo Nested"


def test_a_revocation_leaves_what_it_left_before(session: Session, flushes: list[int]) -> None:
    """The lifecycle's revocation writes its row and the person's status as plain rows: the
    same revocation, audit event and outbox message, the person's keys revoked."""
    org = factories.make_org(session)
    user = factories.make_user(session, org, email="cy@example.com")
    key_id = factories.make_key(session, org, owner=user).id
    session.commit()
    flushes.clear()
    revocation = lifecycle.revoke(session, user=user, actor=factories.SETUP, reason="left")
    change_writes.flush_changes(session, KINDS)
    assert flushes == []
    session.commit()
    session.expunge_all()
    assert session.get_one(User, user.id).status is UserStatus.REVOKED
    stored = session.get_one(Revocation, revocation.id)
    assert (stored.user_id, stored.previous_status, stored.reason) == (
        user.id,
        UserStatus.ACTIVE,
        "left",
    )
    revoked = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.revoked")).one()
    assert revoked.after is not None and revoked.after["keys_revoked"] == [str(key_id)]
    tasks = session.scalars(select(OutboxMessage.task)).all()
    assert sorted(tasks) == sorted([lifecycle.TASK_OPEN_REVIEW, key_changes.TASK_INVALIDATE_KEYS])
    assert session.scalar(select(KeyCutoff.key_id)) == key_id


def test_a_row_gone_meanwhile_is_stale_as_for_the_flush(session: Session) -> None:
    """A changed row that is no longer there is refused, written with other rows or alone."""
    org = factories.make_org(session)
    user = factories.make_user(session, org, email="di@example.com")
    session.commit()
    gone = delete(User).where(User.id == user.id).execution_options(synchronize_session=False)
    session.execute(gone)
    user.name = "Di Gone"
    audit.record(
        session,
        actor=factories.SETUP,
        organisation_id=org.id,
        action="test.changed",
        target_type="user",
        target_id=user.id,
    )
    with pytest.raises(StaleDataError):
        change_writes.flush_changes(session, KINDS)
    session.rollback()


def test_a_new_row_is_written_and_read_as_a_constructed_one(session: Session) -> None:
    """models.base.new_row puts the values in the entity's dict: the flush inserts them
    (defaults included), and a name that is not a column goes through the constructor."""
    org = factories.make_org(session)
    event = new_row(
        AuditEvent,
        organisation_id=org.id,
        source=Source.SCIM,
        actor="tester",
        action="test.row",
        target_type="user",
        target_id="t-1",
        after={"a": 1},
    )
    session.add(event)
    session.commit()
    session.expunge_all()
    stored = session.scalars(select(AuditEvent).where(AuditEvent.action == "test.row")).one()
    assert (stored.organisation_id, stored.actor, stored.after) == (org.id, "tester", {"a": 1})
    assert stored.occurred_at is not None and stored.before is None
    team = new_row(Team, organisation_id=org.id, name="Platform", memberships=[])
    assert inspect(team).attrs.name.history.added == ["Platform"]  # through the constructor


def test_a_rollback_forgets_the_new_rows_as_after_the_flush(session: Session) -> None:
    """A new row written this way and rolled back leaves the session as a flushed one does
    (transient again), not as a persistent object of a row that does not exist."""
    org = factories.make_org(session)
    user = factories.make_user(session, org, email="ed@example.com")
    session.commit()
    event = audit.record(
        session,
        actor=factories.SETUP,
        organisation_id=org.id,
        action="test.changed",
        target_type="user",
        target_id=user.id,
    )
    change_writes.flush_changes(session, KINDS)
    assert inspect(event).persistent
    session.rollback()
    assert inspect(event).transient and event not in session
    assert session.get(AuditEvent, event.id) is None
