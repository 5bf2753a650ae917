"""Sending an audit stream in order: claim it, pin the next batch, settle the attempt.

A batch is pinned on the stream (`pending_from_seq`..`pending_through_seq`) before it is sent
and the cursor moves past it only when the receiver accepted it: a failure, an outage or a
restart resends exactly that batch under the same webhook-id, and nothing after it goes out
first. A claim is a short lease, never a lock held across the network call. A stream deleted
while a batch is out is not written to when the answer comes (`settle_stream` finds none).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from models import audit, locked_rows
from models.actor import Actor
from models.backoff import backoff
from models.entities import AuditEvent, AuditStream
from models.queries.audit_events import COLUMNS, event_view


@dataclass(frozen=True)
class Batch:
    stream_id: uuid.UUID
    from_seq: int
    through_seq: int
    events: list[dict[str, Any]]

    @property
    def message_id(self) -> str:
        """The same for every retry of this batch, so a receiver can drop a repeat."""
        return f"{self.stream_id}:{self.from_seq}-{self.through_seq}"


def due_stream_ids(session: Session, *, now: datetime) -> list[uuid.UUID]:
    """Enabled streams not waiting out a backoff."""
    return list(
        session.scalars(
            select(AuditStream.id).where(
                AuditStream.enabled.is_(True),
                or_(AuditStream.next_attempt_at.is_(None), AuditStream.next_attempt_at <= now),
            )
        )
    )


def claim_stream(
    session: Session, *, stream_id: uuid.UUID, lease: timedelta, now: datetime
) -> AuditStream | None:
    """The right to send this stream now; None if someone else holds it or it is not due."""
    claimed = session.execute(
        update(AuditStream)
        .where(
            AuditStream.id == stream_id,
            AuditStream.enabled.is_(True),
            or_(AuditStream.claimed_until.is_(None), AuditStream.claimed_until < now),
            or_(AuditStream.next_attempt_at.is_(None), AuditStream.next_attempt_at <= now),
        )
        .values(claimed_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    if not getattr(claimed, "rowcount", 0):
        return None
    return session.get(AuditStream, stream_id, populate_existing=True)


def settle_stream(session: Session, *, stream_id: uuid.UUID) -> AuditStream | None:
    """The stream, locked and read again, to record how a batch went; None if it was deleted."""
    return locked_rows.locked_or_none(session, AuditStream, stream_id)


def extend_claim(stream: AuditStream, *, lease: timedelta, now: datetime) -> None:
    stream.claimed_until = now + lease


def release_stream(session: Session, *, stream_id: uuid.UUID) -> None:
    session.execute(
        update(AuditStream)
        .where(AuditStream.id == stream_id)
        .values(claimed_until=None)
        .execution_options(synchronize_session=False)
    )


def next_batch(session: Session, *, stream: AuditStream) -> Batch | None:
    """The pinned batch if one is waiting, else the next events after the cursor (pinned)."""
    query = select(*COLUMNS, AuditEvent.seq).where(
        AuditEvent.organisation_id == stream.organisation_id,
        AuditEvent.seq > stream.cursor_seq,
    )
    if stream.pending_through_seq is not None:
        query = query.where(AuditEvent.seq <= stream.pending_through_seq)
    rows = session.execute(query.order_by(AuditEvent.seq).limit(stream.batch_size)).all()
    if not rows:
        stream.pending_from_seq = stream.pending_through_seq = None
        return None
    stream.pending_from_seq, stream.pending_through_seq = rows[0].seq, rows[-1].seq
    return Batch(
        stream.id,
        rows[0].seq,
        rows[-1].seq,
        [{**event_view(row), "seq": row.seq} for row in rows],
    )


def batch_accepted(session: Session, *, stream: AuditStream, batch: Batch, now: datetime) -> None:
    if stream.consecutive_failures:
        before = {
            "failing": True,
            "consecutive_failures": stream.consecutive_failures,
            "first_failure_at": stream.first_failure_at.isoformat()
            if stream.first_failure_at
            else None,
            "error": stream.last_error,
        }
        _audit_health(session, stream, "audit_stream.recovered", before, {"failing": False})
    stream.cursor_seq = batch.through_seq
    stream.pending_from_seq = stream.pending_through_seq = None
    stream.events_sent += len(batch.events)
    stream.consecutive_failures, stream.first_failure_at = 0, None
    stream.last_error, stream.last_success_at, stream.next_attempt_at = None, now, None


def batch_refused(
    session: Session,
    *,
    stream: AuditStream,
    error: str,
    now: datetime,
    retry_base: float,
    retry_max: float,
    retry_after: float | None = None,
) -> None:
    """Keep the batch pinned and wait before the next try (the stream is never dropped): at
    least `retry_after` seconds when the receiver asked for it, up to `retry_max`."""
    if not stream.consecutive_failures:
        after = {"failing": True, "error": error[:500]}
        _audit_health(session, stream, "audit_stream.failing", {"failing": False}, after)
    stream.consecutive_failures += 1
    stream.first_failure_at = stream.first_failure_at or now
    stream.last_error = error[:500]
    delay = backoff(
        stream.consecutive_failures, retry_base=retry_base, retry_max=retry_max, asked=retry_after
    )
    stream.next_attempt_at = now + timedelta(seconds=delay)


def _audit_health(
    session: Session,
    stream: AuditStream,
    action: str,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    """The stream starting to fail, or recovering: once each, not at every retry (the events
    go out on the stream itself once it recovers)."""
    audit.record_change(
        session,
        actor=Actor.system("audit-streams"),
        subject=stream,
        action=action,
        target_type="audit_stream",
        before=before,
        after=after,
    )
