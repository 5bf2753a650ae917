"""Revocations (what was changed, so it can be undone) and their reviews and findings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, Timestamped, new_id, utcnow
from models.entities.types import enum_column
from models.enums import FindingState, ReviewCause, ReviewStatus, Severity, Source, UserStatus


class Revocation(Base):
    """One revocation of one user: its cause and the state it replaced."""

    __tablename__ = "revocations"
    __table_args__ = (
        Index("ix_revocations_user", "user_id", "revoked_at"),
        # The cut-off reaper's look for recent revocations whose review has not opened.
        Index(
            "ix_revocations_in_force",
            "revoked_at",
            postgresql_where=text("undone_at IS NULL"),
            sqlite_where=text("undone_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    source: Mapped[Source] = enum_column(Source)
    actor: Mapped[str] = mapped_column(String(255), default="")
    reason: Mapped[str] = mapped_column(String(500), default="")
    previous_status: Mapped[UserStatus] = enum_column(UserStatus)
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(default=None)
    # The identity sources whose assertion that the person is inactive still stands, when
    # more than the revoking source asserted it (another source's deactivation of the revoked
    # person, or its held one this revocation overtook); None: the revoking source alone. A
    # person comes back, but by an admin, only once every one of them lets go.
    standing_sources: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    # A revocation by the schedule: the end date that passed and the source that set it (that
    # source brings the person back by giving a later one, see lifecycle.end_extended).
    ended_access_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_access_source: Mapped[Source | None] = enum_column(Source, default=None, nullable=True)


class RevocationReview(Timestamped, Base):
    """An access-change review: of a revocation, or of a team deletion or a lost role."""

    __tablename__ = "revocation_reviews"
    __table_args__ = (
        Index("ix_revocation_reviews_org_status", "organisation_id", "status"),
        Index("ix_revocation_reviews_org_cause", "organisation_id", "cause"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    cause: Mapped[ReviewCause] = enum_column(ReviewCause, default=ReviewCause.REVOCATION)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None
    )
    revocation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("revocations.id", ondelete="CASCADE"), unique=True, default=None
    )
    # No foreign key: a team_deleted review outlives its team.
    team_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[ReviewStatus] = enum_column(ReviewStatus, default=ReviewStatus.OPEN)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_by: Mapped[str | None] = mapped_column(String(255), default=None)
    last_swept_at: Mapped[datetime | None] = mapped_column(default=None)

    findings: Mapped[list[ReviewFinding]] = relationship(
        back_populates="review", cascade="all, delete-orphan"
    )


class ReviewFinding(Timestamped, Base):
    """One thing the revoked person owned or held, and what was done about it."""

    __tablename__ = "review_findings"
    __table_args__ = (
        Index("ix_review_findings_review", "review_id"),
        UniqueConstraint("review_id", "kind", "subject_id"),
        Index(
            "ix_review_findings_escalation_due",
            "next_escalation_at",
            postgresql_where=text("state = 'open' AND acknowledged_at IS NULL"),
            sqlite_where=text("state = 'open' AND acknowledged_at IS NULL"),
        ),
        Index("ix_review_findings_subject", "subject_id"),
        Index(
            "ix_review_findings_owner",
            "owner_user_id",
            postgresql_where=text("owner_user_id IS NOT NULL"),
            sqlite_where=text("owner_user_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    review_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("revocation_reviews.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(40))
    subject_type: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[uuid.UUID]
    severity: Mapped[Severity] = enum_column(Severity)
    action: Mapped[str] = mapped_column(String(40))
    action_taken: Mapped[bool] = mapped_column(default=False)
    state: Mapped[FindingState] = enum_column(FindingState, default=FindingState.OPEN)
    resolved_by: Mapped[str | None] = mapped_column(String(255), default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    team_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    resolution: Mapped[str | None] = mapped_column(Text, default=None)
    invalidation_status: Mapped[str | None] = mapped_column(String(16), default=None)
    invalidated_at: Mapped[datetime | None] = mapped_column(default=None)
    invalidation_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    store_acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    # The gateway's signed answer after the invalidation: {"accepted", "checked_at", "signature"}.
    gateway_proof: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    acknowledged_by: Mapped[str | None] = mapped_column(String(255), default=None)
    escalation_level: Mapped[int] = mapped_column(default=0)
    last_notified_at: Mapped[datetime | None] = mapped_column(default=None)
    next_escalation_at: Mapped[datetime | None] = mapped_column(default=None)
    observed_until: Mapped[datetime | None] = mapped_column(default=None)
    # Whose decision it is when the review is about no one person (a recertification campaign).
    owner_user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)

    review: Mapped[RevocationReview] = relationship(back_populates="findings")


class KeyInvalidation(Base):
    """When the gateway last acknowledged forgetting a key (so findings can show it)."""

    __tablename__ = "key_invalidations"

    key_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    acknowledged_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(String(40), default="")
