"""Audit log streams: where an organisation's audit trail is sent (a SIEM), and how far."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Timestamped, new_id
from models.entities.types import enum_column
from models.enums import StreamPreset


class AuditStream(Timestamped, Base):
    """One destination; `cursor_seq` is the last audit event it acknowledged.

    A batch being sent is pinned (`pending_from_seq`..`pending_through_seq`) until the
    receiver accepts it, so a retry resends exactly the same events under the same id.
    """

    __tablename__ = "audit_streams"
    __table_args__ = (Index("ix_audit_streams_org", "organisation_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    preset: Mapped[StreamPreset] = enum_column(StreamPreset)
    target: Mapped[str] = mapped_column(String(2000))
    # Each: {"id", "sealed", "created_at", "expires_at"}, as for notification hooks.
    signing_secrets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    splunk_token_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    enabled: Mapped[bool] = mapped_column(default=True)
    batch_size: Mapped[int] = mapped_column(default=500)
    cursor_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    pending_from_seq: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), default=None
    )
    pending_through_seq: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), default=None
    )
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    first_failure_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(default=None)
    events_sent: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), default=0
    )
