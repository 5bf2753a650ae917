"""Admin API: access-change reviews (revocations, team deletions, lost roles), findings,
and the blast-radius preview of a revocation."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, request

from models import audit
from models.access import Viewer, managed_team_ids
from models.actions import organisations
from models.actions import reviews as review_actions
from models.enums import ReviewCause, ReviewStatus
from models.queries.reviews import (
    MAX_PAGE,
    ReviewFilter,
    finding_view,
    list_reviews,
    reassignment_owner,
    review_detail,
    revocation_preview,
    visible_finding,
    visible_review,
)
from webhooks.api.described import takes_body
from webhooks.api.params import enum_param, int_param, uuid_param
from webhooks.api.review_schemas import DecideFinding, KeyPolicyChange, ReassignFinding
from webhooks.auth import admin_actor, current_admin, current_viewer
from webhooks.body import no_fields, parse_body
from webhooks.context import db_session

bp = Blueprint("reviews", __name__, url_prefix="/api/v1")


@bp.get("/users/<uuid:user_id>/revocation-preview")
def preview(user_id: uuid.UUID) -> dict[str, Any]:
    return revocation_preview(db_session(), current_viewer(), user_id)


@bp.get("/reviews")
def index() -> dict[str, Any]:
    filters = ReviewFilter(
        status=enum_param("status", ReviewStatus),
        user_id=uuid_param("user_id"),
        cause=enum_param("cause", ReviewCause),
    )
    items, cursor = list_reviews(
        db_session(),
        current_viewer(),
        filters,
        limit=int_param("limit", 50, low=1, high=200),
        after=uuid_param("cursor"),
    )
    return {"items": items, "next_cursor": cursor}


@bp.get("/key-policy")
def key_policy() -> dict[str, Any]:
    return _key_policy_view(current_admin())


@bp.put("/key-policy")
@takes_body(KeyPolicyChange)
def change_key_policy() -> dict[str, Any]:
    viewer = current_admin()
    body = parse_body(KeyPolicyChange)
    session = db_session()
    organisations.update_settings(
        session,
        organisation=viewer.organisation(session),
        changes={"org_key_policy": body.org_key_policy},
        actor=admin_actor(viewer),
    )
    session.commit()
    return _key_policy_view(viewer)


def _key_policy_view(viewer: Viewer) -> dict[str, Any]:
    settings = viewer.organisation(db_session()).settings
    return {
        "org_key_policy": settings.org_key_policy.value,
        "user_key_policy": settings.user_key_policy.value,
        "team_key_policy": settings.team_key_policy.value,
        "deleted_team_key_policy": settings.deleted_team_key_policy.value,
    }


@bp.get("/reviews/<uuid:review_id>")
def show(review_id: uuid.UUID) -> dict[str, Any]:
    return review_detail(
        db_session(),
        current_viewer(),
        review_id,
        limit=int_param("limit", MAX_PAGE, low=1, high=MAX_PAGE),
        after=uuid_param("cursor"),
        before=uuid_param("before"),
    )


@bp.post("/reviews/<uuid:review_id>/acknowledge")
def acknowledge(review_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_viewer()
    no_fields()
    session = db_session()
    review = visible_review(session, viewer, review_id)
    teams = None if viewer.is_admin else managed_team_ids(session, viewer)
    count = review_actions.acknowledge_review(
        session, review=review, actor=admin_actor(viewer), team_ids=teams
    )
    session.commit()
    return {"acknowledged": count, "review": review_detail(session, viewer, review_id)}


@bp.get("/findings/<uuid:finding_id>")
def show_finding(finding_id: uuid.UUID) -> dict[str, Any]:
    session = db_session()
    return finding_view(session, visible_finding(session, current_viewer(), finding_id))


@bp.post("/findings/<uuid:finding_id>/resolve")
def resolve(finding_id: uuid.UUID) -> dict[str, Any]:
    return _decide(finding_id, review_actions.resolve_finding)


@bp.post("/findings/<uuid:finding_id>/dismiss")
def dismiss(finding_id: uuid.UUID) -> dict[str, Any]:
    return _decide(finding_id, review_actions.dismiss_finding)


@bp.post("/findings/<uuid:finding_id>/acknowledge")
def acknowledge_finding(finding_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_viewer()
    no_fields()
    session = db_session()
    finding = visible_finding(session, viewer, finding_id, to_change=True)
    review_actions.acknowledge_finding(session, finding=finding, actor=admin_actor(viewer))
    session.commit()
    return finding_view(session, finding)


@bp.post("/findings/<uuid:finding_id>/reassign")
def reassign(finding_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_viewer()
    body = parse_body(ReassignFinding)
    session = db_session()
    finding = visible_finding(session, viewer, finding_id, to_change=True)
    to_user, to_team = reassignment_owner(
        session, viewer, user_id=body.user_id, team_id=body.team_id
    )
    with audit.keeping_refusals(session):
        review_actions.reassign_finding(
            session,
            finding=finding,
            actor=admin_actor(viewer),
            to_user=to_user,
            to_team=to_team,
            note=body.note,
        )
    session.commit()
    return finding_view(session, finding)


def _decide(finding_id: uuid.UUID, operation: Any) -> dict[str, Any]:
    viewer = current_viewer()
    note = parse_body(DecideFinding).note if bool(request.get_data(cache=True)) else ""
    session = db_session()
    finding = visible_finding(session, viewer, finding_id, to_change=True)
    with audit.keeping_refusals(session):
        operation(session, finding=finding, actor=admin_actor(viewer), note=note)
    session.commit()
    return finding_view(session, finding)
