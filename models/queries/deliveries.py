"""Reading IdP event deliveries and their outcome: the admin list, one delivery, metrics."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.entities import ReceivedDelivery
from models.errors import NotFound

CHANNELS = ("okta", "events")


@dataclass(frozen=True)
class DeliveryPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def delivery_summary(delivery: ReceivedDelivery) -> dict[str, Any]:
    return {
        "id": str(delivery.id),
        "channel": delivery.channel,
        "delivery_id": delivery.delivery_id,
        "status": delivery.status,
        "outcome": delivery.outcome,
        "received_at": delivery.received_at.isoformat(),
        "processed_at": delivery.processed_at.isoformat() if delivery.processed_at else None,
        "attempts": delivery.attempts,
        "applied": delivery.applied_count,
        "lag_ms": delivery.lag_ms,
    }


def delivery_detail(delivery: ReceivedDelivery) -> dict[str, Any]:
    return {**delivery_summary(delivery), "events": delivery.results, "payload": delivery.payload}


def get_delivery(
    session: Session, organisation_id: uuid.UUID, delivery_id: uuid.UUID
) -> ReceivedDelivery:
    delivery = session.get(ReceivedDelivery, delivery_id)
    if (
        delivery is None
        or delivery.organisation_id != organisation_id
        or delivery.channel not in CHANNELS
    ):
        raise NotFound("delivery not found")
    return delivery


def list_deliveries(
    session: Session,
    organisation_id: uuid.UUID,
    *,
    channel: str | None = None,
    status: str | None = None,
    limit: int = 50,
    after: uuid.UUID | None = None,
) -> DeliveryPage:
    """Newest first (ids are time-ordered), paged by the last id seen."""
    query = select(ReceivedDelivery).where(
        ReceivedDelivery.organisation_id == organisation_id,
        ReceivedDelivery.channel.in_([channel] if channel else CHANNELS),
    )
    if status:
        query = query.where(ReceivedDelivery.status == status)
    if after:
        query = query.where(ReceivedDelivery.id < after)
    rows = list(session.scalars(query.order_by(ReceivedDelivery.id.desc()).limit(limit + 1)))
    next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
    return DeliveryPage([delivery_summary(row) for row in rows[:limit]], next_cursor)


@dataclass(frozen=True)
class DeliveryStats:
    by_status: dict[tuple[str, str], int]
    applied: dict[str, int]
    recent_lag_seconds: dict[str, tuple[float, float]]  # channel -> (average, max)


def delivery_stats(session: Session, *, window: timedelta = timedelta(minutes=5)) -> DeliveryStats:
    """Counts by channel and status, events applied, and the recent received->applied lag."""
    in_channels = ReceivedDelivery.channel.in_(CHANNELS)
    by_status: dict[tuple[str, str], int] = {}
    applied: dict[str, int] = {}
    for channel, status, count, applied_sum in session.execute(
        select(
            ReceivedDelivery.channel,
            ReceivedDelivery.status,
            func.count(),
            func.coalesce(func.sum(ReceivedDelivery.applied_count), 0),
        )
        .where(in_channels)
        .group_by(ReceivedDelivery.channel, ReceivedDelivery.status)
    ):
        by_status[(channel, status)] = count
        applied[channel] = applied.get(channel, 0) + int(applied_sum)
    lag: dict[str, tuple[float, float]] = {}
    for channel, average, maximum in session.execute(
        select(
            ReceivedDelivery.channel,
            func.avg(ReceivedDelivery.lag_ms),
            func.max(ReceivedDelivery.lag_ms),
        )
        .where(in_channels, ReceivedDelivery.processed_at >= utcnow() - window)
        .group_by(ReceivedDelivery.channel)
    ):
        lag[channel] = (float(average or 0) / 1000, float(maximum or 0) / 1000)
    return DeliveryStats(by_status, applied, lag)
