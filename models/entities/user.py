"""People who sign in to Odock, and where each one came from."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from connectors import email_address
from models.base import Base, Timestamped, new_id
from models.entities.types import enum_column
from models.enums import Role, Source, UserStatus


class User(Timestamped, Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("organisation_id", "email_key"),
        Index("ix_users_org_status", "organisation_id", "status"),
        Index("ix_users_org_role", "organisation_id", "role"),
        # The due scan of access end dates: an index range, people with no date left out.
        Index(
            "ix_users_access_end_due",
            "status",
            "access_ends_at",
            postgresql_where=text("access_ends_at IS NOT NULL"),
            sqlite_where=text("access_ends_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))
    role: Mapped[Role] = enum_column(Role)
    status: Mapped[UserStatus] = enum_column(UserStatus)
    # When access ends on its own (revoked by the schedule), who set that date, and the date
    # the departure notice was last sent for (a new date re-arms it).
    access_ends_at: Mapped[datetime | None] = mapped_column(default=None)
    access_ends_source: Mapped[Source | None] = enum_column(Source, default=None, nullable=True)
    departure_notice_for: Mapped[datetime | None] = mapped_column(default=None)

    identity_links: Mapped[list[IdentityLink]] = relationship(back_populates="user")

    def set_email(self, email: str) -> None:
        self.email = email.strip()
        self.email_key = email_key(email)


def email_key(email: str) -> str:
    """The key a person is found by from their email, in every source
    (connectors.email_address: case, Unicode forms, IDNA domains)."""
    return email_address.email_key(email)


def same_email(signed_in: str, known: str) -> bool:
    """Whether an email someone signed in with is the known one: the same domain by IDNA,
    the local part with letters A-Z in any case and every other character as it is.
    email_key's Unicode folding would take a lookalike a provider verified (the Kelvin sign
    U+212A reads as "K") for the person it imitates."""
    return email_address.same_address(signed_in, known)


class IdentityLink(Timestamped, Base):
    """Which source a user came from, under which stable external id."""

    __tablename__ = "identity_links"
    __table_args__ = (
        UniqueConstraint("organisation_id", "source", "external_id"),
        Index("ix_identity_links_user", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # The user's organisation, for the lookup by stable id; no foreign key of its own: the
    # user holds it, and an organisation's deletion reaches the link through the user (0036).
    organisation_id: Mapped[uuid.UUID]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    source: Mapped[Source] = enum_column(Source)
    external_id: Mapped[str] = mapped_column(String(255))
    connector_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(back_populates="identity_links")
