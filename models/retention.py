"""Bookkeeping rows deleted once their retention has passed, a bounded batch per call: the
caller commits each batch, so a purge never holds a long lock or a huge transaction (on
PostgreSQL and on SQLite, where every writer waits for it). The audit trail is the record and
is never purged; each purge run that deleted anything leaves one event in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from models import audit
from models.actor import Actor


@dataclass(frozen=True)
class Purge:
    """What a purge run did: rows deleted, in how many batches (transactions)."""

    purged: int
    batches: int


def delete_batch(
    session: Session, id_column: InstrumentedAttribute[Any], *where: ColumnElement[bool], limit: int
) -> int:
    """Delete at most `limit` rows of `id_column`'s table matching `where`; how many went."""
    batch = select(id_column).where(*where).limit(limit).scalar_subquery()
    gone = session.execute(
        delete(id_column.class_)
        .where(id_column.in_(batch))
        .execution_options(synchronize_session=False)
    )
    return int(gone.rowcount)  # type: ignore[attr-defined]


def record_purge(
    session: Session, *, actor: Actor, action: str, table: str, done: Purge, before: datetime
) -> None:
    """The run's one audit event. The rows are the service's bookkeeping, no organisation's
    own: the event names none (`odock-sync audit export --action ...` lists it)."""
    audit.record(
        session,
        actor=actor,
        organisation_id=None,
        action=action,
        target_type="table",
        target_id=table,
        after={"purged": done.purged, "batches": done.batches, "before": before.isoformat()},
    )
