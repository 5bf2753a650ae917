"""The stream order: an event whose transaction commits late is numbered after the events
already numbered, so a stream cursor that moved on meanwhile still reaches it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from models.actor import Actor
from models.audit import record
from models.audit_sequence import sequence_events
from models.base import utcnow
from models.entities import AuditEvent
from tests.support import factories as f


def _record(session, org_id, name: str, *, minutes_ago: int = 0) -> None:
    event = record(
        session,
        actor=Actor.system("test"),
        organisation_id=org_id,
        action=name,
        target_type="user",
        target_id=name,
    )
    event.occurred_at = utcnow() - timedelta(minutes=minutes_ago)


def _sequence(sessions) -> None:
    with sessions() as session:
        sequence_events(session)
        session.commit()


def test_a_late_commit_is_numbered_after_what_was_already_numbered(
    session, sessions, engine
) -> None:
    org = f.make_org(session)
    session.commit()
    _sequence(sessions)
    with sessions() as early:
        # A long transaction (a directory sync) records its event first but commits last.
        _record(early, org.id, "early.but.slow", minutes_ago=5)
        early.flush()
        if engine.dialect.name == "sqlite":  # SQLite serialises writers: it commits first
            early.commit()
        with sessions() as quick:
            _record(quick, org.id, "quick")
            quick.commit()
        _sequence(sessions)
        cursor = _seq_of(sessions, "quick")
        early.commit()
    _sequence(sessions)
    with sessions() as check:
        after_cursor = check.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.organisation_id == org.id, AuditEvent.seq > cursor)
            .order_by(AuditEvent.seq)
        ).all()
        unnumbered = check.scalars(select(AuditEvent.id).where(AuditEvent.seq.is_(None))).all()
    assert unnumbered == []
    if engine.dialect.name == "postgresql":
        assert after_cursor == ["early.but.slow"]  # not skipped although it is older
    else:
        assert _seq_of(sessions, "early.but.slow") < cursor


def _seq_of(sessions, action: str) -> int:
    with sessions() as session:
        return session.scalars(select(AuditEvent.seq).where(AuditEvent.action == action)).one()
