"""Organisations and their per-organisation settings."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, Timestamped, new_id
from models.entities.types import enum_column

if TYPE_CHECKING:
    from models.entities.mass_change import MassChangeSettings

from models.enums import DeletedTeamKeyPolicy, KeyPolicy, LeaverInvitationPolicy, ScimDeletePolicy

SCIM_ACCESS_END_ATTRIBUTE = (
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeLeaveDateTime"
)


class Organisation(Timestamped, Base):
    __tablename__ = "organisations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(64), unique=True)

    settings: Mapped[OrganisationSettings] = relationship(
        back_populates="organisation", uselist=False, lazy="joined"
    )
    # The mass-change gate's thresholds (None: the defaults), loaded only when asked for: a
    # SCIM write reads them with its user, since a deactivation passes the gate.
    mass_change_settings: Mapped[MassChangeSettings | None] = relationship(viewonly=True)

    @property
    def approval_required(self) -> bool:
        """Whether a person added to it waits for an admin's approval (PENDING)."""
        return self.settings.approval_required


class OrganisationSettings(Timestamped, Base):
    """Policy knobs an organisation admin tunes; defaults are the safe choice."""

    __tablename__ = "organisation_settings"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    invitation_lifetime_hours: Mapped[int] = mapped_column(default=7 * 24)
    approval_required: Mapped[bool] = mapped_column(default=False)
    resend_cooldown_seconds: Mapped[int] = mapped_column(default=60)
    resend_daily_cap: Mapped[int] = mapped_column(default=5)
    user_key_policy: Mapped[KeyPolicy] = enum_column(KeyPolicy, default=KeyPolicy.REVOKE)
    team_key_policy: Mapped[KeyPolicy] = enum_column(KeyPolicy, default=KeyPolicy.HOLD)
    # Organisation keys a leaver created: held (an urgent finding) unless set to revoke.
    org_key_policy: Mapped[KeyPolicy] = enum_column(KeyPolicy, default=KeyPolicy.HOLD)
    deleted_team_key_policy: Mapped[DeletedTeamKeyPolicy] = enum_column(
        DeletedTeamKeyPolicy, default=DeletedTeamKeyPolicy.REVOKE
    )
    review_escalation_minutes: Mapped[int] = mapped_column(default=24 * 60)
    scim_delete_policy: Mapped[ScimDeletePolicy] = enum_column(
        ScimDeletePolicy, default=ScimDeletePolicy.REVOKE
    )
    leaver_invitation_policy: Mapped[LeaverInvitationPolicy] = enum_column(
        LeaverInvitationPolicy, default=LeaverInvitationPolicy.REVOKE
    )
    # Source health: how long each configured source may stay silent (or a stream keep
    # failing) before the admins are alerted.
    scim_silence_seconds: Mapped[int] = mapped_column(default=24 * 3600)
    ldap_silence_seconds: Mapped[int] = mapped_column(default=3 * 3600)
    idp_events_silence_seconds: Mapped[int] = mapped_column(default=24 * 3600)
    stream_failure_seconds: Mapped[int] = mapped_column(default=15 * 60)
    # Access end dates: how many days ahead the departure notice goes out, and the SCIM
    # attribute that carries the date (Entra's employeeLeaveDateTime mapped to the enterprise
    # extension by default).
    departure_notice_days: Mapped[int] = mapped_column(default=7)
    scim_access_end_attribute: Mapped[str] = mapped_column(
        String(255), default=SCIM_ACCESS_END_ATTRIBUTE
    )

    organisation: Mapped[Organisation] = relationship(back_populates="settings")
