"""Deliveries (admins): notifications sent with every attempt, IdP event deliveries received
with Reprocess, as the API shows and does them."""

from __future__ import annotations

import uuid

from flask import Response

from models.access import require_admin
from models.actions import idp_events
from models.actions.notification_deliveries import deliveries_of
from models.queries.deliveries import get_delivery, list_deliveries
from webhooks.console.web import bp, done, page, signed_in
from webhooks.context import db_session

LISTED = 50


@bp.get("/deliveries")
def deliveries() -> Response:
    viewer = signed_in().viewer
    require_admin(viewer)
    session = db_session()
    return page(
        "deliveries.html",
        notifications=deliveries_of(session, organisation_id=viewer.organisation_id, limit=LISTED),
        events=list_deliveries(session, viewer.organisation_id, limit=LISTED).items,
    )


@bp.post("/event-deliveries/<uuid:delivery_id>/reprocess")
def reprocess(delivery_id: uuid.UUID) -> Response:
    current = signed_in()
    require_admin(current.viewer)
    session = db_session()
    found = get_delivery(session, current.viewer.organisation_id, delivery_id)
    idp_events.reprocess_delivery(session, delivery=found, actor=current.actor)
    session.commit()
    return done("console.deliveries", "reprocessing")
