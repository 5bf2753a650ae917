"""Storing inbound webhook deliveries exactly once, whatever the sender retries."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, make_transient_to_detached

from models.base import new_id, utcnow
from models.db import conflict_insert
from models.entities.delivery import ReceivedDelivery

UNIQUE_KEY = ["organisation_id", "channel", "delivery_id"]


@dataclass(frozen=True)
class Recorded:
    delivery: ReceivedDelivery
    is_new: bool


def record_delivery(
    session: Session, *, organisation_id: uuid.UUID, channel: str, delivery_id: str, payload: Any
) -> Recorded:
    """Store a delivery under its id; a replay returns the stored one with is_new False.

    One INSERT .. ON CONFLICT DO NOTHING, so a replay racing in from a concurrent request is
    settled by the unique constraint without a savepoint (this is a webhook hot path).
    """
    values = _row(new_id(), Incoming(organisation_id, channel, delivery_id, payload), utcnow())
    delivery = ReceivedDelivery(**values)
    connection = session.connection()
    inserted = connection.execute(_insert_once(connection.dialect.name), values).scalar()
    if inserted is None:
        existing = _find(session, organisation_id, channel, delivery_id)
        assert existing is not None
        return Recorded(existing, is_new=False)
    make_transient_to_detached(delivery)  # the row exists: attach it without another query
    session.add(delivery)
    return Recorded(delivery, is_new=True)


@dataclass(frozen=True)
class Incoming:
    """A verified delivery to store."""

    organisation_id: uuid.UUID
    channel: str
    delivery_id: str
    payload: Any


def store_deliveries(connection: Connection, incoming: list[Incoming]) -> list[bool]:
    """Store several deliveries in one statement; for each, whether it is new.

    A delivery id seen before (or twice in this batch) is not stored again. No session and no
    ORM objects: this is the receiver's hot path, batched across concurrent requests.
    """
    now = utcnow()
    rows = [_row(new_id(), item, now) for item in incoming]
    inserted = set(connection.execute(_insert_once(connection.dialect.name), rows).scalars())
    return [row["id"] in inserted for row in rows]


def _row(id: uuid.UUID, item: Incoming, now: datetime) -> dict[str, Any]:
    return {
        "id": id,
        "organisation_id": item.organisation_id,
        "channel": item.channel,
        "delivery_id": item.delivery_id,
        "payload": item.payload,
        "received_at": now,
        "status": "received",
        "outcome": None,
        "processed_at": None,
        "attempts": 0,
        "results": [],
        "applied_count": 0,
        "lag_ms": None,
    }


@functools.cache
def _insert_once(dialect: str) -> Any:
    """INSERT .. ON CONFLICT DO NOTHING RETURNING id, built once: this is a hot path."""
    insert = conflict_insert(dialect)
    return (
        insert(ReceivedDelivery)
        .on_conflict_do_nothing(index_elements=UNIQUE_KEY)
        .returning(ReceivedDelivery.id)
    )


def _find(
    session: Session, organisation_id: uuid.UUID, channel: str, delivery_id: str
) -> ReceivedDelivery | None:
    return session.scalar(
        select(ReceivedDelivery).where(
            ReceivedDelivery.organisation_id == organisation_id,
            ReceivedDelivery.channel == channel,
            ReceivedDelivery.delivery_id == delivery_id,
        )
    )
