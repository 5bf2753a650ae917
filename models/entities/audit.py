"""The audit trail: every change of state, its cause, and the state before and after."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, new_id, utcnow
from models.entities.types import enum_column
from models.enums import Source


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_org_time", "organisation_id", "occurred_at"),
        Index("ix_audit_events_target", "target_type", "target_id"),
        Index("ix_audit_events_time", "occurred_at", "id"),
        # Numbered events only on PostgreSQL: events are written unnumbered (the sequencer
        # numbers them after commit), and a NULL entry per insert served no query (0034).
        Index("ix_audit_events_seq", "seq", unique=True, postgresql_where=text("seq IS NOT NULL")),
        Index(
            "ix_audit_events_org_seq",
            "organisation_id",
            "seq",
            postgresql_where=text("seq IS NOT NULL"),
        ),
        Index(
            "ix_audit_events_unsequenced",
            "occurred_at",
            postgresql_where=text("seq IS NULL"),
            sqlite_where=text("seq IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[Source] = enum_column(Source)
    actor: Mapped[str] = mapped_column(String(255), default="")
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    # The request (or the task it queued) that caused the change: one id across web and worker.
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # The order streams deliver in, given after commit by the sequencer (models.audit_sequence):
    # a later number is always committed later, so a stream's cursor never skips an event.
    seq: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), default=None
    )
