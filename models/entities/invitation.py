"""Invitations: enrollment by email link, tracked from sending to acceptance or expiry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Timestamped, new_id
from models.entities.types import enum_column
from models.enums import InvitationStatus, Role


class Invitation(Timestamped, Base):
    __tablename__ = "invitations"
    __table_args__ = (
        Index("ix_invitations_org_email", "organisation_id", "email_key"),
        Index("ix_invitations_status_expiry", "status", "expires_at"),
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
    expires_at: Mapped[datetime]
    invited_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    accepted_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    resend_count: Mapped[int] = mapped_column(default=0)
    last_sent_at: Mapped[datetime | None] = mapped_column(default=None)
