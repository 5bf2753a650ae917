"""Signed change events from Odock's management plane, applied by the IdP events drain.

The receiver stores an event once under its webhook-id (channel `odock`, the same table and
drain as IdP events); the drain applies an organisation's deliveries in the order they
arrived, and the objects' versions settle any order they were sent in: an event older than
what is held is recorded as stale and changes nothing. A `usage.recorded` event carries a
usage batch instead of an object: its records are stored once per record id, as pushed usage.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from models.actions import leaver_checks, odock_objects, odock_usage
from models.actions.odock_objects import SCHEMAS, StrictInt
from models.actor import Actor
from models.entities import OutboxMessage, ReceivedDelivery
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
    "usage.recorded",
]
USAGE_RECORDED = "usage.recorded"


class ChangeEvent(BaseModel):
    """An object event names the object (`id`, `version`); `usage.recorded` carries
    `{"records": [...]}` in `data` (each record idempotent by its own id)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: EventType
    id: uuid.UUID | None = None
    data: dict[str, Any] | None = None
    version: StrictInt | None = None


def parse_event(payload: Any) -> ChangeEvent:
    """The event, or a ValueError saying what is wrong with it (checked before storing)."""
    event = ChangeEvent.model_validate(payload)
    if event.type == USAGE_RECORDED:
        _usage(event)
    else:
        _object_ref(event)
        if event.type.endswith(".upserted"):
            _object(event)
    return event


def apply_event(session: Session, organisation_id: uuid.UUID, payload: Any) -> dict[str, Any]:
    """Apply one stored event; its outcome is `applied` or `stale`. Raises ValueError or a
    DomainError (an unknown owner, say) when it cannot be applied."""
    event = parse_event(payload)
    if event.type == USAGE_RECORDED:
        return _apply_usage(session, organisation_id, event)
    kind, _, change = event.type.partition(".")
    object_id, version = _object_ref(event)
    if change == "deleted":
        done = odock_objects.delete_object(
            session,
            organisation_id=organisation_id,
            kind=kind,
            object_id=object_id,
            version=version,
            actor=EVENT_ACTOR,
        )
    else:
        done = odock_objects.upsert_object(
            session,
            organisation_id=organisation_id,
            kind=kind,
            object_id=object_id,
            data=_object(event),
            actor=EVENT_ACTOR,
        )
    return {
        "type": event.type,
        "id": str(object_id),
        "version": version,
        "outcome": APPLIED if done.applied else STALE,
    }


@dataclass
class Written:
    """What an organisation's processed deliveries wrote that a revocation committing at the
    same moment may not have seen: the keys upserted and the usage records stored."""

    key_ids: list[uuid.UUID] = field(default_factory=list)
    usage_ids: list[str] = field(default_factory=list)


def written(deliveries: Iterable[ReceivedDelivery]) -> dict[uuid.UUID, Written]:
    """What these processed deliveries' events wrote, by organisation (see review_written)."""
    found: dict[uuid.UUID, Written] = {}
    for delivery in deliveries:
        if delivery.channel != CHANNEL_ODOCK:
            continue
        for result in delivery.results or []:
            if result.get("outcome") != APPLIED:
                continue
            kind, _, change = str(result.get("type")).partition(".")
            if change == "upserted" and leaver_checks.grants_access(kind):
                ours = found.setdefault(delivery.organisation_id, Written())
                ours.key_ids.append(uuid.UUID(result["id"]))
            elif result.get("type") == USAGE_RECORDED:
                records = _usage(parse_event(delivery.payload)).records
                ours = found.setdefault(delivery.organisation_id, Written())
                ours.usage_ids.extend(r.id for r in records)
    return found


def arm_review(session: Session, deliveries: Iterable[ReceivedDelivery]) -> list[OutboxMessage]:
    """In the batch's transaction: the check of what these processed deliveries wrote, one
    per organisation, armed as a backstop (models.actions.leaver_checks); review_written runs
    them once the batch has committed."""
    return [
        leaver_checks.arm(
            session,
            organisation_id=organisation_id,
            actor=EVENT_ACTOR,
            key_ids=ours.key_ids,
            usage_ids=ours.usage_ids,
        )
        for organisation_id, ours in written(deliveries).items()
    ]


def review_written(session: Session, armed: list[OutboxMessage]) -> None:
    """Once the deliveries' writes have committed: the keys and usage of people revoked here
    go to their reviews now (review_sweep), each organisation in a transaction of its own."""
    for backstop in armed:
        leaver_checks.check_now(session, backstop)
        session.commit()


def _apply_usage(
    session: Session, organisation_id: uuid.UUID, event: ChangeEvent
) -> dict[str, Any]:
    ingested = odock_usage.ingest_usage(
        session, organisation_id=organisation_id, records=_usage(event).records, actor=EVENT_ACTOR
    )
    return {
        "type": event.type,
        "outcome": APPLIED,
        "accepted": ingested.accepted,
        "duplicates": ingested.duplicates,
    }


def _usage(event: ChangeEvent) -> odock_usage.UsageBatch:
    if event.id is not None or event.version is not None:
        raise InvalidInput("a usage event names no object: no `id` or `version`", field="id")
    if event.data is None:
        raise InvalidInput('a usage event carries {"records": [...]} in `data`', field="data")
    return odock_usage.parse_batch(event.data)


def _object_ref(event: ChangeEvent) -> tuple[uuid.UUID, int]:
    if event.id is None:
        raise InvalidInput("an object event names the object's `id`", field="id")
    if event.version is None:
        raise InvalidInput("an object event carries the object's `version`", field="version")
    return event.id, event.version


def _object(event: ChangeEvent) -> odock_objects.OdockObject:
    if event.data is None:
        raise InvalidInput("an upsert event carries the object in `data`", field="data")
    data = {"version": event.version, **event.data}
    if data["version"] != event.version:
        raise InvalidInput("data.version differs from the event's version", field="data.version")
    return SCHEMAS[event.type.partition(".")[0]].model_validate(data)
