"""Invitations: enrollment by email link, tracked from sending to acceptance or expiry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Timestamped, new_id, utcnow
from models.entities.types import enum_column
from models.enums import InvitationStatus, Role

CLAIMED = text("status IN ('sending', 'sent')")


class Invitation(Timestamped, Base):
    __tablename__ = "invitations"
    __table_args__ = (
        Index("ix_invitations_org_email", "organisation_id", "email_key"),
        # Revoking a person finds the invitations they sent (never changes on a status update).
        Index("ix_invitations_invited_by", "invited_by_user_id"),
        # No index here involves status (pending ones live in pending_invitations) and half of
        # each page is left free, so that expiring, accepting or revoking an invitation rewrites
        # the row in place on its page without touching any index (a PostgreSQL HOT update).
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))
    role: Mapped[Role] = enum_column(Role)
    teams: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[InvitationStatus] = enum_column(
        InvitationStatus, default=InvitationStatus.PENDING
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Random per send; with the service's secret key it re-derives the link token (see
    # docs/invitations.md), so the token itself is never stored.
    token_nonce: Mapped[str] = mapped_column(String(32), default="")
    send_count: Mapped[int] = mapped_column(default=1)
    expires_at: Mapped[datetime]
    invited_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    invited_by_name: Mapped[str] = mapped_column(String(255), default="")
    accepted_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    resend_count: Mapped[int] = mapped_column(default=0)
    resend_window_started_at: Mapped[datetime | None] = mapped_column(default=None)
    resends_in_window: Mapped[int] = mapped_column(default=0)
    last_sent_at: Mapped[datetime | None] = mapped_column(default=None)


class PendingInvitation(Base):
    """One row per invitation whose status is pending, removed in the same transaction as the
    status changes: at most one per email and organisation (as a database fact), and the
    expiry sweep's work list, without an index on invitations that would change on expiry."""

    __tablename__ = "pending_invitations"
    __table_args__ = (
        Index("uq_pending_invitations_email", "organisation_id", "email_key", unique=True),
    )

    invitation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("invitations.id", ondelete="CASCADE"), primary_key=True
    )
    organisation_id: Mapped[uuid.UUID]
    email_key: Mapped[str] = mapped_column(String(320))


class InvitationDelivery(Base):
    """One attempt to email one send of an invitation (the delivery history)."""

    __tablename__ = "invitation_deliveries"
    __table_args__ = (
        Index("ix_invitation_deliveries_invitation", "invitation_id", "send_number"),
        # One email per send: at most one attempt is sending or sent (the idempotency key of
        # the send, claimed before the SMTP conversation), as a database fact.
        Index(
            "uq_invitation_deliveries_claim",
            "invitation_id",
            "send_number",
            unique=True,
            postgresql_where=CLAIMED,
            sqlite_where=CLAIMED,
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    invitation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("invitations.id", ondelete="CASCADE")
    )
    send_number: Mapped[int]
    attempt: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))  # sending, sent, failed, rejected
    detail: Mapped[str] = mapped_column(Text, default="")
    recipient: Mapped[str] = mapped_column(String(320))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A failed attempt keeps the send until its next attempt is due (models.retry_lease):
    # another copy of the task waits until then instead of sending early.
    retry_at: Mapped[datetime | None] = mapped_column(default=None)
