"""Signed generic events: a small JSON schema any IdP, HR system or script can send.

A body is one event object, or {"events": [...]} with up to 100 of them. See
docs/idp_events.md for the schema and examples.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from connectors.idp_events import Action, IdpEvent, Subject, in_utc

MAX_EVENTS = 100

ACTIONS = {
    "user.deactivated": Action.REVOKE,
    "user.reactivated": Action.REACTIVATE,
    "user.updated": Action.UPDATE_PROFILE,
    "membership.added": Action.JOIN_TEAM,
    "membership.removed": Action.LEAVE_TEAM,
    "user.access_end": Action.SET_ACCESS_END,
}


class NotAnEventsBody(ValueError):
    """The JSON is neither an event object nor {"events": [...]}."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UserRef(_Strict):
    external_id: str | None = Field(default=None, min_length=1, max_length=255)
    email: str | None = Field(default=None, min_length=3, max_length=320)

    @model_validator(mode="after")
    def _one_of(self) -> UserRef:
        if not (self.external_id or self.email):
            raise ValueError("user needs external_id or email")
        return self


class TeamRef(_Strict):
    name: str = Field(min_length=1, max_length=200)


class Changes(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, min_length=3, max_length=320)


class GenericEvent(_Strict):
    id: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=100)
    occurred_at: datetime
    user: UserRef
    changes: Changes | None = None
    team: TeamRef | None = None
    # user.access_end: when the person's access ends (null clears the date).
    access_ends_at: datetime | None = None

    @model_validator(mode="after")
    def _fields_for_type(self) -> GenericEvent:
        self.occurred_at = _in_utc(self.occurred_at, "occurred_at")
        if self.type == "user.access_end":
            if "access_ends_at" not in self.model_fields_set:
                raise ValueError("user.access_end needs access_ends_at (null clears it)")
            if self.access_ends_at is not None:
                self.access_ends_at = _in_utc(self.access_ends_at, "access_ends_at")
        action = ACTIONS.get(self.type)
        if action is Action.UPDATE_PROFILE and not (
            self.changes and self.changes.model_dump(exclude_none=True)
        ):
            raise ValueError("user.updated needs changes.name or changes.email")
        if action in (Action.JOIN_TEAM, Action.LEAVE_TEAM) and self.team is None:
            raise ValueError(f"{self.type} needs team.name")
        return self


def _in_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name} needs a time zone (e.g. Z)")
    utc = in_utc(moment)
    if utc is None:
        raise ValueError(f"{name} is out of range")
    return utc


def raw_events(payload: Any) -> list[Any]:
    if isinstance(payload, dict) and set(payload) == {"events"}:
        events = payload["events"]
        if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
            raise NotAnEventsBody(f"events must be a list of 1 to {MAX_EVENTS} events")
        return events
    if isinstance(payload, dict):
        return [payload]
    raise NotAnEventsBody('the body must be an event object or {"events": [...]}')


def parse_events(payload: Any, *, delivery_id: str) -> list[IdpEvent]:
    return [
        parse_event(raw, fallback_id=f"{delivery_id}#{index}")
        for index, raw in enumerate(raw_events(payload))
    ]


def parse_event(raw: Any, *, fallback_id: str) -> IdpEvent:
    event_id = str(raw.get("id") or fallback_id) if isinstance(raw, dict) else fallback_id
    event_type = str(raw.get("type") or "") if isinstance(raw, dict) else ""
    if isinstance(raw, dict) and event_type and event_type not in ACTIONS:
        # Unknown types are stored and ignored, whatever fields they carry.
        return IdpEvent(event_id=event_id[:255], event_type=event_type[:100], action=Action.IGNORE)
    try:
        event = GenericEvent.model_validate(raw)
    except ValidationError as exc:
        return IdpEvent(
            event_id=event_id[:255],
            event_type=event_type[:100],
            action=ACTIONS.get(event_type, Action.IGNORE),
            invalid=_explain(exc),
        )
    action = ACTIONS.get(event.type, Action.IGNORE)
    changes = event.changes.model_dump(exclude_none=True) if event.changes else {}
    return IdpEvent(
        event_id=event.id,
        event_type=event.type,
        action=action,
        published=event.occurred_at,
        subject=Subject(external_id=event.user.external_id, email=event.user.email),
        team_name=event.team.name if event.team else None,
        changes=changes,
        access_ends_at=event.access_ends_at,
    )


def _explain(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "event"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
