"""Budgets and quotas, owned by an organisation, a team, a user or an API key."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Timestamped, new_id
from models.entities.odock import UnseenInListings
from models.entities.types import enum_column
from models.enums import OwnerType


class Budget(UnseenInListings, Timestamped, Base):
    __tablename__ = "budgets"
    __table_args__ = (Index("ix_budgets_owner", "owner_type", "owner_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    owner_type: Mapped[OwnerType] = enum_column(OwnerType)
    owner_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    window: Mapped[str] = mapped_column(String(16), default="monthly")
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # A leaver's budget: frozen by their revocation (no further spend), thawed by its undoing.
    frozen_at: Mapped[datetime | None] = mapped_column(default=None)
    frozen_by_revocation_id: Mapped[uuid.UUID | None] = mapped_column(default=None)


class Quota(UnseenInListings, Timestamped, Base):
    __tablename__ = "quotas"
    __table_args__ = (Index("ix_quotas_owner", "owner_type", "owner_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    owner_type: Mapped[OwnerType] = enum_column(OwnerType)
    owner_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(16), default="requests")
    limit: Mapped[int] = mapped_column(BigInteger)
    window: Mapped[str] = mapped_column(String(16), default="daily")
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
