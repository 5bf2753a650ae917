"""Admin API: key recertification policy, campaigns and the owners' decisions."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, request

from models.access import require_admin
from models.actions import recertification
from models.enums import FindingState
from models.queries import recertification as queries
from webhooks.api.params import enum_param, int_param, uuid_param
from webhooks.api.recertification_schemas import (
    ConfigureRecertification,
    DecideRecertification,
    RestoreRecertifiedKey,
)
from webhooks.auth import admin_actor, current_viewer
from webhooks.body import no_fields, parse_body
from webhooks.context import db_session

bp = Blueprint("recertification", __name__, url_prefix="/api/v1/recertification")


@bp.get("/policy")
def show_policy() -> dict[str, Any]:
    viewer = current_viewer()
    require_admin(viewer)
    return recertification.policy_view(
        recertification.policy_of(db_session(), viewer.organisation_id)
    )


@bp.put("/policy")
def configure() -> dict[str, Any]:
    viewer = current_viewer()
    require_admin(viewer)
    body = parse_body(ConfigureRecertification)
    session = db_session()
    policy = recertification.configure(
        session,
        organisation_id=viewer.organisation_id,
        actor=admin_actor(viewer),
        changes=body.model_dump(exclude_unset=True),
    )
    session.commit()
    return recertification.policy_view(policy)


@bp.post("/campaigns")
def open_now() -> tuple[dict[str, Any], int]:
    viewer = current_viewer()
    require_admin(viewer)
    no_fields()
    session = db_session()
    opened = recertification.open_campaign(
        session, organisation_id=viewer.organisation_id, actor=admin_actor(viewer)
    )
    session.commit()
    return queries.campaign_summary(session, opened.campaign), 201 if opened.created else 200


@bp.get("/campaigns")
def index() -> dict[str, Any]:
    items, cursor = queries.list_campaigns(
        db_session(),
        current_viewer(),
        limit=int_param("limit", 50, low=1, high=200),
        after=uuid_param("cursor"),
    )
    return {"items": items, "next_cursor": cursor}


@bp.get("/campaigns/<uuid:campaign_id>")
def show(campaign_id: uuid.UUID) -> dict[str, Any]:
    return queries.campaign_detail(
        db_session(),
        current_viewer(),
        campaign_id,
        state=enum_param("state", FindingState),
        limit=int_param("limit", 100, low=1, high=1000),
        offset=int_param("offset", 0, low=0, high=10_000_000),
    )


@bp.post("/findings/<uuid:finding_id>/decide")
def decide(finding_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_viewer()
    body = parse_body(DecideRecertification)
    session = db_session()
    finding = queries.finding_for_decision(session, viewer, finding_id)
    recertification.decide(
        session,
        finding=finding,
        decision=body.decision,
        reason=body.reason,
        actor=admin_actor(viewer),
    )
    session.commit()
    return queries.finding_detail(session, finding)


@bp.post("/findings/<uuid:finding_id>/restore")
def restore(finding_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_viewer()
    has_body = bool(request.get_data(cache=True))
    body = parse_body(RestoreRecertifiedKey) if has_body else RestoreRecertifiedKey()
    session = db_session()
    finding = queries.require_admin_finding(session, viewer, finding_id)
    recertification.restore(session, finding=finding, actor=admin_actor(viewer), reason=body.reason)
    session.commit()
    return queries.finding_detail(session, finding)
