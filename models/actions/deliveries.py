"""Storing inbound webhook deliveries exactly once, whatever the sender retries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.entities.delivery import ReceivedDelivery


@dataclass(frozen=True)
class Recorded:
    delivery: ReceivedDelivery
    is_new: bool


def record_delivery(
    session: Session, *, organisation_id: uuid.UUID, channel: str, delivery_id: str, payload: Any
) -> Recorded:
    """Store a delivery under its id; a replay returns the stored one with is_new False."""
    existing = _find(session, organisation_id, channel, delivery_id)
    if existing is not None:
        return Recorded(existing, is_new=False)
    delivery = ReceivedDelivery(
        organisation_id=organisation_id, channel=channel, delivery_id=delivery_id, payload=payload
    )
    try:
        with session.begin_nested():
            session.add(delivery)
    except IntegrityError:  # the same id raced in from a concurrent request
        raced = _find(session, organisation_id, channel, delivery_id)
        assert raced is not None
        return Recorded(raced, is_new=False)
    return Recorded(delivery, is_new=True)


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
