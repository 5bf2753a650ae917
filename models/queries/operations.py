"""What an operator watches: work waiting to leave odock-sync, cut-offs waiting on the gateway."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.entities import KeyCutoff, NotificationDelivery, OutboxMessage
from models.enums import DeliveryStatus


@dataclass(frozen=True)
class OperationalStats:
    outbox_backlog: int
    outbox_oldest_age: float
    pending_invalidations: int
    pending_oldest_age: float
    past_deadline: int
    deliveries_retrying: int
    deliveries_failed: int


def operational_stats(
    session: Session, *, deadline: timedelta, now: datetime | None = None
) -> OperationalStats:
    now = now or utcnow()
    backlog, oldest_message = session.execute(
        select(func.count(OutboxMessage.id), func.min(OutboxMessage.available_at)).where(
            OutboxMessage.completed_at.is_(None), OutboxMessage.available_at <= now
        )
    ).one()
    pending = KeyCutoff.acknowledged_at.is_(None)
    pending_count, oldest_cutoff = session.execute(
        select(func.count(KeyCutoff.id), func.min(KeyCutoff.requested_at)).where(pending)
    ).one()
    overdue = session.scalar(
        select(func.count(KeyCutoff.id)).where(pending, KeyCutoff.requested_at <= now - deadline)
    )
    deliveries = dict(
        session.execute(
            select(NotificationDelivery.status, func.count(NotificationDelivery.id))
            .where(
                (NotificationDelivery.status == DeliveryStatus.FAILED)
                | (
                    (NotificationDelivery.status == DeliveryStatus.PENDING)
                    & (NotificationDelivery.attempts > 0)
                )
            )
            .group_by(NotificationDelivery.status)
        ).all()
    )
    return OperationalStats(
        outbox_backlog=int(backlog),
        outbox_oldest_age=_age(now, oldest_message),
        pending_invalidations=int(pending_count),
        pending_oldest_age=_age(now, oldest_cutoff),
        past_deadline=int(overdue or 0),
        deliveries_retrying=int(deliveries.get(DeliveryStatus.PENDING, 0)),
        deliveries_failed=int(deliveries.get(DeliveryStatus.FAILED, 0)),
    )


def _age(now: datetime, since: datetime | None) -> float:
    if since is None:
        return 0.0
    if since.tzinfo is None:
        since = since.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - since).total_seconds())
