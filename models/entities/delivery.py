"""Webhook deliveries received from outside, stored once under their id (dedupe)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, new_id, utcnow


class ReceivedDelivery(Base):
    __tablename__ = "received_deliveries"
    __table_args__ = (
        UniqueConstraint("organisation_id", "channel", "delivery_id"),
        Index("ix_received_deliveries_status", "status", "received_at"),
        Index("ix_received_deliveries_org_received", "organisation_id", "received_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(32))
    delivery_id: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload: Mapped[Any] = mapped_column(JSON, default=None)
    status: Mapped[str] = mapped_column(String(16), default="received")
    outcome: Mapped[str | None] = mapped_column(Text, default=None)
    processed_at: Mapped[datetime | None] = mapped_column(default=None)
    # How processing went: tries, the per-event results, and received -> processed lag.
    attempts: Mapped[int] = mapped_column(default=0)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    applied_count: Mapped[int] = mapped_column(default=0)
    lag_ms: Mapped[int | None] = mapped_column(default=None)
