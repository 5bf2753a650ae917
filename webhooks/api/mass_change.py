"""Admin API: the mass-change gate's thresholds, and the changes it holds (approve, discard)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint
from pydantic import Field

from models.access import Viewer
from models.actions import mass_change, mass_change_holds
from models.entities import MassChange
from models.enums import ChangeStatus
from models.queries.mass_change import hold_views, list_holds, tripped_gates
from webhooks.api.described import takes_body
from webhooks.api.params import enum_param, int_param, uuid_param
from webhooks.auth import admin_actor, current_admin
from webhooks.body import RequestBody, no_fields, parse_body
from webhooks.context import db_session

bp = Blueprint("mass_change", __name__, url_prefix="/api/v1/mass-change")


class GateSettings(RequestBody):
    """Fields left out keep their current value."""

    enabled: bool | None = None
    threshold_count: int | None = Field(default=None, description="0: no count limit")
    threshold_percent: int | None = Field(
        default=None, description="of the organisation's active people; 0: no percentage limit"
    )
    window_minutes: int | None = None


def _settings_view(viewer: Viewer) -> dict[str, Any]:
    session = db_session()
    limits = mass_change.thresholds(session, viewer.organisation_id)
    return {**limits.view(), "holding": tripped_gates(session, viewer.organisation_id)}


@bp.get("/settings")
def show_settings() -> dict[str, Any]:
    """The gate's thresholds and which sources it is holding now"""
    return _settings_view(current_admin())


@bp.put("/settings")
@takes_body(GateSettings)
def change_settings() -> dict[str, Any]:
    """Change the gate's thresholds"""
    viewer = current_admin()
    body = parse_body(GateSettings)
    session = db_session()
    mass_change.set_thresholds(
        session,
        organisation=viewer.organisation(session),
        actor=admin_actor(viewer),
        **body.model_dump(exclude_none=True),
    )
    session.commit()
    return _settings_view(viewer)


@bp.get("/holds")
def holds() -> dict[str, Any]:
    """Held changes (status=held by default), oldest first"""
    viewer = current_admin()
    status = enum_param("status", ChangeStatus) or ChangeStatus.HELD
    items = list_holds(
        db_session(),
        viewer.organisation_id,
        status=status,
        batch_id=uuid_param("batch_id"),
        limit=int_param("limit", 500, low=1, high=500),
    )
    return {"items": items}


@bp.post("/holds/<uuid:hold_id>/approve")
def approve_hold(hold_id: uuid.UUID) -> dict[str, Any]:
    """Apply one held change now"""
    return _decide(lambda session, org: [mass_change_holds.get_hold(session, org, hold_id)], True)


@bp.post("/holds/<uuid:hold_id>/discard")
def discard_hold(hold_id: uuid.UUID) -> dict[str, Any]:
    """Drop one held change"""
    return _decide(lambda session, org: [mass_change_holds.get_hold(session, org, hold_id)], False)


@bp.post("/batches/<uuid:batch_id>/approve")
def approve_batch(batch_id: uuid.UUID) -> dict[str, Any]:
    """Apply every change of a batch still held"""
    return _decide(lambda session, org: mass_change_holds.batch_holds(session, org, batch_id), True)


@bp.post("/batches/<uuid:batch_id>/discard")
def discard_batch(batch_id: uuid.UUID) -> dict[str, Any]:
    """Drop every change of a batch still held"""
    return _decide(
        lambda session, org: mass_change_holds.batch_holds(session, org, batch_id), False
    )


def _decide(find: Any, approve: bool) -> dict[str, Any]:
    viewer = current_admin()
    no_fields()
    session = db_session()
    found: list[MassChange] = find(session, viewer.organisation_id)
    if approve:
        mass_change_holds.approve(session, holds=found, actor=admin_actor(viewer))
    else:
        mass_change_holds.discard(session, holds=found, actor=admin_actor(viewer))
    session.commit()
    return {"items": hold_views(session, found)}
