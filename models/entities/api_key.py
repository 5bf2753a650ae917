"""Virtual API keys as Odock's gateway knows them; never their secret values."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Timestamped, new_id
from models.entities.odock import UnseenInListings
from models.entities.types import enum_column
from models.enums import KeyType


class VirtualApiKey(UnseenInListings, Timestamped, Base):
    __tablename__ = "virtual_api_keys"
    __table_args__ = (
        Index("ix_virtual_api_keys_owner_user", "owner_user_id"),
        # Most keys have no team and were revoked by no revocation: index only those that do.
        Index(
            "ix_virtual_api_keys_owner_team",
            "owner_team_id",
            postgresql_where=text("owner_team_id IS NOT NULL"),
            sqlite_where=text("owner_team_id IS NOT NULL"),
        ),
        Index("ix_virtual_api_keys_created_by", "created_by_user_id"),
        Index(
            "ix_virtual_api_keys_revocation",
            "revoked_by_revocation_id",
            postgresql_where=text("revoked_by_revocation_id IS NOT NULL"),
            sqlite_where=text("revoked_by_revocation_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    key_type: Mapped[KeyType] = enum_column(KeyType)
    owner_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    owner_team_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("teams.id", ondelete="SET NULL"), default=None
    )
    name: Mapped[str] = mapped_column(String(200))
    masked_value: Mapped[str] = mapped_column(String(64))
    revoked: Mapped[bool] = mapped_column(default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_by_revocation_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    revealed_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    revealed_at: Mapped[datetime | None] = mapped_column(default=None)
    # Odock's version of the key (grows with every change in its store); 0 for keys made here.
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
