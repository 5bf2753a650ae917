"""Key recertification: an organisation's schedule and scope, and the campaigns it opens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Timestamped, new_id, utcnow
from models.entities.types import enum_column
from models.enums import RecertDeadlinePolicy


class RecertificationPolicy(Timestamped, Base):
    """How often an organisation recertifies its keys, which keys, and what a deadline does."""

    __tablename__ = "recertification_policies"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(default=False)
    every_days: Mapped[int] = mapped_column(default=90)
    # Slot n of the schedule opens at anchor_at + n * every_days.
    anchor_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline_days: Mapped[int] = mapped_column(default=14)
    spend_days: Mapped[int | None] = mapped_column(default=90)
    unused_days: Mapped[int | None] = mapped_column(default=90)
    moved_people: Mapped[bool] = mapped_column(default=True)
    inactive_days: Mapped[int] = mapped_column(default=90)
    on_deadline: Mapped[RecertDeadlinePolicy] = enum_column(
        RecertDeadlinePolicy, default=RecertDeadlinePolicy.REVOKE
    )


class RecertificationCampaign(Timestamped, Base):
    """One campaign: its findings live in one review (cause recertification)."""

    __tablename__ = "recertification_campaigns"
    __table_args__ = (
        UniqueConstraint("organisation_id", "slot"),
        Index("ix_recertification_campaigns_due", "deadline_at", "enforced_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    # "schedule:<n>" for the beat's slot n, "manual:<time>" for one opened by hand.
    slot: Mapped[str] = mapped_column(String(64))
    review_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("revocation_reviews.id", ondelete="SET NULL"), default=None
    )
    opened_by: Mapped[str] = mapped_column(String(255), default="")
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline_at: Mapped[datetime]
    enforced_at: Mapped[datetime | None] = mapped_column(default=None)
    # The policy as it stood when the campaign opened.
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Counts, unused keys and inactive people, as found at opening; and what the deadline did.
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
