"""Request bodies of the admin API; their JSON schemas also feed the OpenAPI document."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field

from models.enums import LeaverInvitationPolicy, Role, TeamRole, UserStatus
from webhooks.body import RequestBody


class CreateUser(RequestBody):
    email: str = Field(max_length=320)
    name: str = Field(min_length=1, max_length=200)
    role: Role = Field(default=Role.USER, strict=False)


class EditUser(RequestBody):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    role: Role | None = Field(default=None, strict=False)
    status: UserStatus | None = Field(default=None, strict=False)


class RevokeUser(RequestBody):
    reason: str = Field(default="", max_length=500)


class SetAccessEnd(RequestBody):
    # An ISO 8601 moment with its time zone; null clears the date.
    access_ends_at: datetime | None = Field(strict=False)


class ReactivateUser(RequestBody):
    # Re-enable even the keys used after the revocation (audited as such).
    restore_used_keys: bool = False


class DeclineUser(RequestBody):
    reason: str = Field(default="", max_length=500)


class CreateTeam(RequestBody):
    name: str = Field(min_length=1, max_length=200)


class RenameTeam(RequestBody):
    name: str = Field(min_length=1, max_length=200)


class SetMembership(RequestBody):
    role: TeamRole = Field(default=TeamRole.MEMBER, strict=False)


class TeamInvite(RequestBody):
    team_id: uuid.UUID = Field(strict=False)
    role: TeamRole = Field(default=TeamRole.MEMBER, strict=False)


class CreateInvitation(RequestBody):
    email: str = Field(max_length=320)
    role: Role = Field(default=Role.USER, strict=False)
    teams: list[TeamInvite] = Field(default_factory=list, max_length=50)
    expires_in_hours: int | None = Field(default=None, ge=1, le=720)


class LeaverPolicy(RequestBody):
    policy: LeaverInvitationPolicy = Field(strict=False)


class RefreshInvitations(RequestBody):
    ids: list[Annotated[uuid.UUID, Field(strict=False)]] = Field(min_length=1, max_length=200)
