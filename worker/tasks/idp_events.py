"""Applying a stored IdP event delivery, once, after the receiver committed it."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError, OperationalError

from models.actions import idp_events
from models.entities import ReceivedDelivery
from worker.runtime import runtime
from worker.tasks.base import TransientError, task


@task("events.process_delivery")
def process_delivery(delivery_id: str) -> None:
    with runtime().sessions() as session:
        delivery = session.get(ReceivedDelivery, uuid.UUID(delivery_id), with_for_update=True)
        if delivery is None or delivery.status != idp_events.RECEIVED:
            return  # gone, or already processed by an earlier run of this task
        try:
            idp_events.process_delivery(session, delivery=delivery)
            session.commit()
        except (IntegrityError, OperationalError) as exc:  # a race or a database hiccup
            raise TransientError(f"{type(exc).__name__} on delivery {delivery_id}") from exc
