"""Teams, their members and the team role each member holds."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from connectors.name_keys import composed, name_key
from models.base import Base, Timestamped, new_id, utcnow
from models.entities.types import enum_column
from models.entities.user import User
from models.enums import Source, TeamRole


class Team(Timestamped, Base):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("organisation_id", "name_key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200))
    external_source: Mapped[Source | None] = enum_column(Source, default=None, nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(255), default=None)

    memberships: Mapped[list[TeamMembership]] = relationship(
        back_populates="team", cascade="all, delete-orphan"
    )

    def set_name(self, name: str) -> None:
        """The name composed (NFC) and its key, by the one rule of connectors.name_keys."""
        self.name = composed(name.strip())
        self.name_key = name_key(self.name)


class TeamMembership(Base):
    __tablename__ = "team_memberships"
    __table_args__ = (Index("ix_team_memberships_user", "user_id"),)

    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[TeamRole] = enum_column(TeamRole)
    source: Mapped[Source] = enum_column(Source, default=Source.ADMIN)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    team: Mapped[Team] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship()
