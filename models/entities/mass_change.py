"""The mass-change gate of push sources (SCIM, IdP events): its settings per organisation,
one gate row per organisation and source (locked while counting), and the counted changes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Timestamped, new_id, utcnow
from models.entities.types import enum_column
from models.enums import ChangeKind, ChangeStatus, Source

DEFAULT_THRESHOLD_COUNT = 10
DEFAULT_THRESHOLD_PERCENT = 0
DEFAULT_WINDOW_MINUTES = 10


class MassChangeSettings(Timestamped, Base):
    """An organisation's thresholds; without a row the defaults apply."""

    __tablename__ = "mass_change_settings"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(default=True)
    threshold_count: Mapped[int] = mapped_column(default=DEFAULT_THRESHOLD_COUNT)
    threshold_percent: Mapped[int] = mapped_column(default=DEFAULT_THRESHOLD_PERCENT)
    window_minutes: Mapped[int] = mapped_column(default=DEFAULT_WINDOW_MINUTES)


class MassChangeGate(Base):
    """One organisation's gate for one source; open while `batch_id` is unset."""

    __tablename__ = "mass_change_gates"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[Source] = enum_column(Source, primary_key=True)
    # Changes before this moment are not counted (set when an admin decides a batch).
    counted_since: Mapped[datetime | None] = mapped_column(default=None)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    tripped_at: Mapped[datetime | None] = mapped_column(default=None)


class MassChange(Base):
    """A destructive change from a push source: counted, and held when over the threshold."""

    __tablename__ = "mass_changes"
    __table_args__ = (
        Index("ix_mass_changes_window", "organisation_id", "source", "created_at"),
        Index("ix_mass_changes_user", "user_id", "status"),
        Index("ix_mass_changes_batch", "batch_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    source: Mapped[Source] = enum_column(Source)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[ChangeKind] = enum_column(ChangeKind)
    status: Mapped[ChangeStatus] = enum_column(ChangeStatus)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    # What applying it needs later (the reason, the role to drop to, the SCIM id...).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor: Mapped[str] = mapped_column(String(255), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_by: Mapped[str] = mapped_column(String(255), default="")
