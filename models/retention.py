"""Bookkeeping rows deleted once their retention has passed, a bounded batch per call: the
caller commits each batch, so a purge never holds a long lock or a huge transaction (on
PostgreSQL and on SQLite, where every writer waits for it). The audit trail is the record and
is never purged; each batch that deleted anything leaves its event in it, in its own
transaction, so a run that dies midway has audited every row it deleted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from models import audit
from models.actor import Actor
from models.db import SessionFactory


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


def in_batches(
    sessions: SessionFactory,
    *,
    batch: int,
    delete: Callable[[Session, int], int],
    record: Callable[[Session, int], None],
) -> Purge:
    """`delete` (at most `batch` rows) until a batch comes back short, each batch a
    transaction that `record`s what it deleted."""
    purged = batches = 0
    while True:
        with sessions() as session:
            gone = delete(session, batch)
            if gone:
                record(session, gone)
            session.commit()
        purged, batches = purged + gone, batches + 1
        if gone < batch:
            return Purge(purged, batches)


def record_purge(
    session: Session, *, actor: Actor, action: str, table: str, purged: int, before: datetime
) -> None:
    """One batch's audit event. The rows are the service's bookkeeping, no organisation's
    own: the event names none (`odock-sync audit export --action ...` lists it)."""
    audit.record(
        session,
        actor=actor,
        organisation_id=None,
        action=action,
        target_type="table",
        target_id=table,
        after={"purged": purged, "before": before.isoformat()},
    )
