"""Cut-offs: each change the gateway must hear about, with the clock it must beat."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, new_id, utcnow

# The `command` of a cut-off that is a proof of revocation (models/actions/key_proofs.py).
PROOF_COMMAND = "key.prove"


class KeyCutoff(Base):
    """One key's invalidation at the gateway (after the store, when bridged), until acknowledged;
    bridged, also a budget's freeze or thaw in the store (`key_id` is then the budget's id).

    Its deadline is `requested_at` plus the CUTOFF_DEADLINE setting. `leased_until` marks a
    gateway call in flight: while it holds, nobody else calls for this key (one retry chain).
    """

    __tablename__ = "key_cutoffs"
    __table_args__ = (
        Index(
            "ix_key_cutoffs_pending",
            "next_attempt_at",
            postgresql_where=text("acknowledged_at IS NULL"),
            sqlite_where=text("acknowledged_at IS NULL"),
        ),
        Index("ix_key_cutoffs_key", "key_id"),
        # The purge's: acknowledged cut-offs by age, without reading the pending ones.
        Index(
            "ix_key_cutoffs_acknowledged",
            "acknowledged_at",
            postgresql_where=text("acknowledged_at IS NOT NULL"),
            sqlite_where=text("acknowledged_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    key_id: Mapped[uuid.UUID]
    command: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(100), default="")
    # Bridged: the command goes to the store first, then (for a key) the gateway is called.
    via_store: Mapped[bool] = mapped_column(default=False)
    # Bridged: the store command this cut-off carries; done only once the store settled it.
    command_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    # The time-to-kill clock of the revocation that asked for it (epoch seconds, its source).
    source: Mapped[str | None] = mapped_column(String(32), default=None)
    arrived_at: Mapped[float | None] = mapped_column(default=None)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    leased_until: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    alarmed_at: Mapped[datetime | None] = mapped_column(default=None)


class CutoffIncident(Base):
    """A stretch of time in which an organisation had cut-offs past their deadline: one alarm."""

    __tablename__ = "cutoff_incidents"
    __table_args__ = (
        Index("ix_cutoff_incidents_org", "organisation_id", "cleared_at"),
        Index(
            "ix_cutoff_incidents_open",
            "organisation_id",
            unique=True,
            postgresql_where=text("cleared_at IS NULL"),
            sqlite_where=text("cleared_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    cleared_at: Mapped[datetime | None] = mapped_column(default=None)
    keys_overdue: Mapped[int] = mapped_column(default=0)
