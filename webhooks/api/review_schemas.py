"""Request bodies for reviews, findings and notification hooks."""

from __future__ import annotations

import uuid

from pydantic import Field

from models.enums import HookKind, KeyPolicy
from webhooks.body import RequestBody


class DecideFinding(RequestBody):
    note: str = Field(default="", max_length=2000)


class ReassignFinding(RequestBody):
    user_id: uuid.UUID | None = Field(default=None, strict=False)
    team_id: uuid.UUID | None = Field(default=None, strict=False)
    note: str = Field(default="", max_length=2000)


class CreateHook(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    kind: HookKind = Field(strict=False)
    target: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(default_factory=list, max_length=50)


class EditHook(RequestBody):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    target: str | None = Field(default=None, min_length=1, max_length=2000)
    events: list[str] | None = Field(default=None, max_length=50)
    enabled: bool | None = None


class RotateSecret(RequestBody):
    # A JSON number (strict, as every RequestBody): not "24", " 24" or "1e1"; finite.
    keep_previous_hours: float = Field(default=24, ge=0, le=720, allow_inf_nan=False)


class KeyPolicyChange(RequestBody):
    """What revoking a person does to the organisation keys they created: `hold` them for the
    review with an urgent finding (the default), or `revoke` them at once."""

    org_key_policy: KeyPolicy = Field(strict=False)
