"""Changes the mass-change gate holds (admins): each batch with Approve or Discard, as the
API's batch actions do them (models/actions/mass_change_holds)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response

from models.access import require_admin
from models.actions import mass_change_holds
from models.enums import ChangeStatus
from models.queries.mass_change import list_holds, tripped_gates
from webhooks.console.web import bp, done, page, signed_in
from webhooks.context import db_session


@bp.get("/holds")
def holds() -> Response:
    viewer = signed_in().viewer
    require_admin(viewer)
    session = db_session()
    batches: dict[str, list[dict[str, Any]]] = {}
    for held in list_holds(session, viewer.organisation_id, status=ChangeStatus.HELD):
        batches.setdefault(held["batch_id"], []).append(held)
    return page("holds.html", batches=batches, gates=tripped_gates(session, viewer.organisation_id))


@bp.post("/holds/batches/<uuid:batch_id>/approve")
def approve_batch(batch_id: uuid.UUID) -> Response:
    return _decide(batch_id, approve=True)


@bp.post("/holds/batches/<uuid:batch_id>/discard")
def discard_batch(batch_id: uuid.UUID) -> Response:
    return _decide(batch_id, approve=False)


def _decide(batch_id: uuid.UUID, *, approve: bool) -> Response:
    current = signed_in()
    require_admin(current.viewer)
    session = db_session()
    found = mass_change_holds.batch_holds(session, current.viewer.organisation_id, batch_id)
    if approve:
        mass_change_holds.approve(session, holds=found, actor=current.actor)
    else:
        mass_change_holds.discard(session, holds=found, actor=current.actor)
    session.commit()
    return done("console.holds", "holds_approved" if approve else "holds_discarded")
