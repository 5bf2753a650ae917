"""Numbering committed audit events in the order they became visible, for streams.

An event's `seq` is given after its transaction commits, by one sequencer at a time (an
advisory lock on PostgreSQL; SQLite serialises writers anyway). Each pass numbers only what is
committed, above every number given before, and commits at once: so once a reader sees number
N, every event numbered below N is visible too. A stream cursor on `seq` therefore never skips
an event that committed late (a long directory sync), which a cursor on time or on an
insert-time sequence would.
"""

from __future__ import annotations

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from models.entities import AuditEvent

SEQUENCER_LOCK = 0x6F646F636B  # "odock": the advisory lock key of the sequencer
BATCH = 2000


def sequence_events(session: Session, *, limit: int = BATCH) -> int:
    """Number up to `limit` unnumbered events, oldest first; the caller commits at once."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQUENCER_LOCK})
    top = session.scalar(select(func.coalesce(func.max(AuditEvent.seq), 0))) or 0
    ids = list(
        session.scalars(
            select(AuditEvent.id)
            .where(AuditEvent.seq.is_(None))
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
            .limit(limit)
        )
    )
    if ids:
        session.execute(
            update(AuditEvent).execution_options(synchronize_session=False),
            [{"id": event_id, "seq": top + n} for n, event_id in enumerate(ids, start=1)],
        )
    return len(ids)


def highest_seq(session: Session) -> int:
    return session.scalar(select(func.coalesce(func.max(AuditEvent.seq), 0))) or 0
