"""Store commands: a key or budget change odock-sync decided, on its way to Odock's store
(bridged)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import JSON, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, new_id, utcnow
from models.entities.types import enum_column
from models.enums import BUDGET_COMMANDS, StoreCommandType


class StoreCommand(Base):
    """One command for one subject: a key (`key.*` commands) or a budget (`budget.*`), named by
    `subject_id`; its id is the webhook-id, so the store applies it once."""

    __tablename__ = "store_commands"
    __table_args__ = (
        Index("ix_store_commands_subject", "subject_id", "issued_at"),
        Index(
            "ix_store_commands_unacknowledged",
            "subject_id",
            postgresql_where=text("acknowledged_at IS NULL"),
            sqlite_where=text("acknowledged_at IS NULL"),
        ),
        Index(
            "ix_store_commands_revocation",
            "revocation_id",
            postgresql_where=text("revocation_id IS NOT NULL"),
            sqlite_where=text("revocation_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    # Odock's id of the key or the budget; which one, the command type's prefix says.
    subject_id: Mapped[uuid.UUID]
    command_type: Mapped[StoreCommandType] = enum_column(StoreCommandType)
    reason: Mapped[str] = mapped_column(String(500), default="")
    # The revocation whose decision the command carries: its revoke (by the revocation or its
    # review), a reassignment decided in its review, the restore or thaw of its undoing. None
    # for a command no revocation made (an admin's own revoke or restore of a key, a rotation
    # request, a team's deletion) and for one issued before migration 0050.
    revocation_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    owner_user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    owner_team_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    applied_at: Mapped[datetime | None] = mapped_column(default=None)
    gateway_invalidated_at: Mapped[datetime | None] = mapped_column(default=None)
    gateway_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    gateway_accepted: Mapped[bool | None] = mapped_column(default=None)
    # The signed proof entry, kept here so a finding created later still gets it.
    gateway_proof: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The store answered that the key does not exist: the command ends, never acknowledged.
    abandoned_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def subject_type(self) -> Literal["key", "budget"]:
        """`budget` for a `budget.*` command, else `key`: derived, as the type is unambiguous."""
        return "budget" if self.command_type in BUDGET_COMMANDS else "key"
