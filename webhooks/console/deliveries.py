"""Deliveries (admins): notifications sent with every attempt and Re-send, audit log streams
with their cursor and lag, IdP event deliveries received with Reprocess, as the API shows and
does them."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from sqlalchemy.orm import Session

from models.access import require_admin
from models.actions import idp_events
from models.actions import notification_deliveries as notifications
from models.actions.audit_streams import list_streams, stream_view
from models.base import utcnow
from models.queries.deliveries import get_delivery, list_deliveries
from models.queries.operations import stream_backlog
from webhooks.console.web import bp, done, page, signed_in
from webhooks.context import db_session

LISTED = 50


@bp.get("/deliveries")
def deliveries() -> Response:
    viewer = signed_in().viewer
    require_admin(viewer)
    session = db_session()
    organisation_id = viewer.organisation_id
    return page(
        "deliveries.html",
        notifications=notifications.deliveries_of(
            session, organisation_id=organisation_id, limit=LISTED
        ),
        streams=_streams(session, organisation_id),
        events=list_deliveries(session, organisation_id, limit=LISTED).items,
    )


def _streams(session: Session, organisation_id: uuid.UUID) -> list[dict[str, Any]]:
    now = utcnow()
    shown = []
    for stream in list_streams(session, organisation_id):
        backlog = stream_backlog(session, stream, now=now)
        shown.append(
            {**stream_view(stream), "behind": backlog.events, "behind_for": _age(backlog.seconds)}
        )
    return shown


def _age(seconds: float) -> str:
    """How old the oldest unsent event is, in the unit a person reads at a glance."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


@bp.post("/notification-deliveries/<uuid:delivery_id>/resend")
def resend(delivery_id: uuid.UUID) -> Response:
    current = signed_in()
    require_admin(current.viewer)
    session = db_session()
    found = notifications.get_notification_delivery(
        session, current.viewer.organisation_id, delivery_id
    )
    notifications.resend_delivery(session, delivery=found, actor=current.actor)
    session.commit()
    return done("console.deliveries", "re-sent")


@bp.post("/event-deliveries/<uuid:delivery_id>/reprocess")
def reprocess(delivery_id: uuid.UUID) -> Response:
    current = signed_in()
    require_admin(current.viewer)
    session = db_session()
    found = get_delivery(session, current.viewer.organisation_id, delivery_id)
    idp_events.reprocess_delivery(session, delivery=found, actor=current.actor)
    session.commit()
    return done("console.deliveries", "reprocessing")
