"""What SCIM knows about a provisioned user beyond the domain user, indexed for IdP lookups."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, and_
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, Timestamped, new_id
from models.entities.team import Team, TeamMembership
from models.entities.types import enum_column
from models.entities.user import User
from models.enums import Role, Source

if TYPE_CHECKING:
    from models.entities.organisation import Organisation


class ScimUser(Timestamped, Base):
    """One SCIM User resource; its id is the SCIM id the IdP stores."""

    __tablename__ = "scim_users"
    __table_args__ = (
        UniqueConstraint("organisation_id", "user_name_key"),
        UniqueConstraint("user_id"),
        Index("ix_scim_users_org_external_id", "organisation_id", "external_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    user_name: Mapped[str] = mapped_column(String(255))
    user_name_key: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255), default=None)
    given_name: Mapped[str | None] = mapped_column(String(200), default=None)
    family_name: Mapped[str | None] = mapped_column(String(200), default=None)
    formatted_name: Mapped[str | None] = mapped_column(String(400), default=None)
    display_name: Mapped[str | None] = mapped_column(String(200), default=None)
    employee_number: Mapped[str | None] = mapped_column(String(100), default=None)
    department: Mapped[str | None] = mapped_column(String(200), default=None)
    manager_id: Mapped[str | None] = mapped_column(String(255), default=None)
    # Pass-through data the IdP sent that the domain does not use (title, phone numbers...).
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The organisation role a mapped group granted, and the role it replaced (to demote).
    granted_role: Mapped[Role | None] = enum_column(Role, default=None, nullable=True)
    role_before_grant: Mapped[Role | None] = enum_column(Role, default=None, nullable=True)
    # The IdP set active=false but the mass-change gate holds the revocation: SCIM shows
    # what the IdP set while the person keeps access until an admin decides.
    held_inactive: Mapped[bool] = mapped_column(default=False)

    user: Mapped[User] = relationship(lazy="joined")
    # Read-only; SCIM reads load it with the user (joinedload) because every answer needs
    # the organisation's settings (its end-date attribute), without a query of their own.
    organisation: Mapped[Organisation] = relationship(viewonly=True)
    emails: Mapped[list[ScimEmail]] = relationship(
        back_populates="scim_user",
        cascade="all, delete-orphan",
        order_by="ScimEmail.position",
        lazy="selectin",
    )
    # The SCIM groups (teams an IdP pushed) the person is in: read-only, loaded with the user
    # when asked for (joinedload), so a SCIM answer needs no query of its own for them.
    groups: Mapped[list[Team]] = relationship(
        secondary=TeamMembership.__table__,
        primaryjoin=lambda: ScimUser.user_id == TeamMembership.user_id,
        secondaryjoin=lambda: and_(
            TeamMembership.team_id == Team.id, Team.external_source == Source.SCIM
        ),
        order_by=Team.name_key,
        viewonly=True,
    )

    def set_user_name(self, user_name: str) -> None:
        self.user_name = user_name
        self.user_name_key = user_name.lower()


class ScimEmail(Base):
    """One value of a SCIM user's multi-valued `emails`, indexed for value-path filters."""

    __tablename__ = "scim_emails"
    __table_args__ = (
        Index("ix_scim_emails_org_value", "organisation_id", "value_key"),
        Index("ix_scim_emails_scim_user", "scim_user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    scim_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scim_users.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)
    value: Mapped[str] = mapped_column(String(320))
    value_key: Mapped[str] = mapped_column(String(320))
    type: Mapped[str | None] = mapped_column(String(32), default=None)
    primary: Mapped[bool | None] = mapped_column(default=None)

    scim_user: Mapped[ScimUser] = relationship(back_populates="emails")


class ScimGroupRole(Base):
    """Organisation policy: members of the IdP group with this name hold this role."""

    __tablename__ = "scim_group_roles"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    group_name_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = enum_column(Role)
