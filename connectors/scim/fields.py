"""What the SCIM connector makes of a User or Group document: the parts odock-sync keeps,
validated and coerced (casting.py), for the domain operations to store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.scim.errors import InvalidValue


@dataclass(frozen=True)
class ScimEmailValue:
    value: str
    type: str | None = None
    primary: bool | None = None


@dataclass(frozen=True)
class ScimUserFields:
    """The parts of a SCIM User that odock-sync keeps, already validated and coerced."""

    user_name: str
    external_id: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    formatted_name: str | None = None
    display_name: str | None = None
    emails: tuple[ScimEmailValue, ...] = ()
    active: bool | None = None
    employee_number: str | None = None
    department: str | None = None
    manager_id: str | None = None
    access_ends_at: datetime | None = None  # from the organisation's configured attribute
    extra: dict[str, Any] = field(default_factory=dict)

    def person_name(self) -> str:
        joined = " ".join(p for p in (self.given_name, self.family_name) if p)
        return (self.display_name or self.formatted_name or joined or self.user_name)[:200]

    def primary_email(self) -> str:
        chosen = next((e for e in self.emails if e.primary), None) or next(iter(self.emails), None)
        if chosen is not None:
            return chosen.value
        if "@" in self.user_name:
            return self.user_name
        raise InvalidValue("an email is required: send emails or an email as userName")


@dataclass(frozen=True)
class ScimGroupFields:
    display_name: str
    external_id: str | None = None
    member_ids: tuple[str, ...] | None = None  # None: leave the members as they are
