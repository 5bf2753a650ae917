"""The provider-neutral shape of one IdP lifecycle event, as the Okta and generic parsers
produce it and the domain applies it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class Action(StrEnum):
    REVOKE = "revoke"
    REACTIVATE = "reactivate"
    DELETE = "delete"
    UPDATE_PROFILE = "update_profile"
    JOIN_TEAM = "join_team"
    LEAVE_TEAM = "leave_team"
    SET_ACCESS_END = "set_access_end"  # when access ends on its own; None clears it
    IGNORE = "ignore"  # a type we store but do not act on


@dataclass(frozen=True)
class Subject:
    """Who an event is about: the provider's stable id and, as a fallback, the email."""

    external_id: str | None = None
    email: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class IdpEvent:
    event_id: str
    event_type: str
    action: Action
    published: datetime | None = None
    subject: Subject | None = None
    team_name: str | None = None
    team_external_id: str | None = None
    changes: dict[str, str] = field(default_factory=dict)
    access_ends_at: datetime | None = None
    invalid: str | None = None  # why the event cannot be applied (schema errors)


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp with a zone, or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return in_utc(moment) if moment.tzinfo is not None else None


def in_utc(moment: datetime) -> datetime | None:
    """`moment` (which has a zone) in UTC; None for a time near the calendar's ends that UTC
    cannot hold (9999-12-31T23:59:59-12:00), which no database column stores either."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None
