"""Signed change events from Odock's management plane, applied by the IdP events drain.

The receiver stores an event once under its webhook-id (channel `odock`, the same table and
drain as IdP events); the drain applies an organisation's deliveries in the order they
arrived, and the objects' versions settle any order they were sent in: an event older than
what is held is recorded as stale and changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from models.actions import odock_objects
from models.actions.odock_objects import SCHEMAS, StrictInt
from models.actor import Actor
from models.enums import Source
from models.errors import InvalidInput

CHANNEL_ODOCK = "odock"
EVENT_ACTOR = Actor(Source.ODOCK, "odock change event")
APPLIED, STALE = "applied", "stale"

EventType = Literal[
    "key.upserted",
    "key.deleted",
    "budget.upserted",
    "budget.deleted",
    "quota.upserted",
    "quota.deleted",
]


class ChangeEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: EventType
    id: uuid.UUID
    data: dict[str, Any] | None = None
    version: StrictInt


def parse_event(payload: Any) -> ChangeEvent:
    """The event, or a ValueError saying what is wrong with it (checked before storing)."""
    event = ChangeEvent.model_validate(payload)
    if event.type.endswith(".upserted"):
        _object(event)
    return event


def apply_event(session: Session, organisation_id: uuid.UUID, payload: Any) -> dict[str, Any]:
    """Apply one stored event; its outcome is `applied` or `stale`. Raises ValueError or a
    DomainError (an unknown owner, say) when it cannot be applied."""
    event = parse_event(payload)
    kind, _, change = event.type.partition(".")
    if change == "deleted":
        done = odock_objects.delete_object(
            session,
            organisation_id=organisation_id,
            kind=kind,
            object_id=event.id,
            version=event.version,
            actor=EVENT_ACTOR,
        )
    else:
        done = odock_objects.upsert_object(
            session,
            organisation_id=organisation_id,
            kind=kind,
            object_id=event.id,
            data=_object(event),
            actor=EVENT_ACTOR,
        )
    return {
        "type": event.type,
        "id": str(event.id),
        "version": event.version,
        "outcome": APPLIED if done.applied else STALE,
    }


def _object(event: ChangeEvent) -> odock_objects.OdockObject:
    if event.data is None:
        raise InvalidInput("an upsert event carries the object in `data`", field="data")
    data = {"version": event.version, **event.data}
    if data["version"] != event.version:
        raise InvalidInput("data.version differs from the event's version", field="data.version")
    return SCHEMAS[event.type.partition(".")[0]].model_validate(data)
