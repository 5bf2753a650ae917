"""Gateway activity attributed to a key, a user and a team."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, new_id, utcnow


class UsageRecord(Base):
    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_user_time", "user_id", "occurred_at"),
        Index("ix_usage_records_key_time", "api_key_id", "occurred_at"),
        UniqueConstraint("organisation_id", "external_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    team_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str] = mapped_column(String(100), default="")
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 6), default=Decimal(0))
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # Odock's id of the record (the idempotency key of a push); None for records made here.
    external_id: Mapped[str | None] = mapped_column(String(128), default=None)
    requests: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")
