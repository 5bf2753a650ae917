"""Request bodies for key recertification."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from models.enums import RecertDeadlinePolicy, RecertDecision
from webhooks.body import RequestBody


class ConfigureRecertification(RequestBody):
    enabled: bool | None = None
    every_days: int | None = Field(default=None, ge=1, le=3650)
    anchor_at: datetime | None = Field(default=None, strict=False)
    deadline_days: int | None = Field(default=None, ge=1, le=365)
    spend_days: int | None = Field(default=None, ge=1, le=3650)
    unused_days: int | None = Field(default=None, ge=1, le=3650)
    moved_people: bool | None = None
    inactive_days: int | None = Field(default=None, ge=1, le=3650)
    on_deadline: RecertDeadlinePolicy | None = Field(default=None, strict=False)


class DecideRecertification(RequestBody):
    decision: RecertDecision = Field(strict=False)
    reason: str = Field(default="", max_length=2000)


class RestoreRecertifiedKey(RequestBody):
    reason: str = Field(default="", max_length=2000)
