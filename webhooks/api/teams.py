"""Admin API: teams and their memberships (team roles are separate from org roles)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint

from models import audit
from models.access import (
    require_can_change_membership,
    require_can_manage_team,
    require_can_view_team,
)
from models.actions import teams as team_actions
from models.actions.users import get_user
from models.errors import NotFound
from models.queries.teams import list_teams, team_members, team_summary
from webhooks.api.schemas import CreateTeam, RenameTeam, SetMembership
from webhooks.auth import admin_actor, current_admin, current_viewer
from webhooks.body import parse_body
from webhooks.context import db_session

bp = Blueprint("teams", __name__, url_prefix="/api/v1")

NOT_A_MEMBER = "that user is not a member of this team"


@bp.get("/teams")
def index() -> dict[str, Any]:
    return {"items": list_teams(db_session(), current_viewer())}


@bp.post("/teams")
def create() -> tuple[dict[str, Any], int]:
    viewer = current_admin()
    body = parse_body(CreateTeam)
    session = db_session()
    team = team_actions.create_team(
        session,
        organisation=viewer.organisation(session),
        name=body.name,
        actor=admin_actor(viewer),
    )
    session.commit()
    return team_summary(team), 201


@bp.patch("/teams/<uuid:team_id>")
def rename(team_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_admin()
    body = parse_body(RenameTeam)
    session = db_session()
    team = team_actions.get_team(session, viewer.organisation_id, team_id)
    team_actions.rename_team(session, team=team, name=body.name, actor=admin_actor(viewer))
    session.commit()
    return team_summary(team)


@bp.delete("/teams/<uuid:team_id>")
def delete(team_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_admin()
    session = db_session()
    team = team_actions.get_team(session, viewer.organisation_id, team_id)
    summary = team_summary(team)
    review = team_actions.delete_team(session, team=team, actor=admin_actor(viewer))
    session.commit()
    return {**summary, "deleted": True, "review_id": str(review.id) if review else None}


@bp.get("/teams/<uuid:team_id>/members")
def members(team_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_viewer()
    session = db_session()
    team = team_actions.get_team(session, viewer.organisation_id, team_id)
    require_can_view_team(session, viewer, team)
    return {"team": team_summary(team), "items": team_members(session, team)}


@bp.put("/teams/<uuid:team_id>/members/<uuid:user_id>")
def add_member(team_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_viewer()
    body = parse_body(SetMembership)
    session = db_session()
    team = team_actions.get_team(session, viewer.organisation_id, team_id)
    require_can_manage_team(session, viewer, team)
    user = get_user(session, viewer.organisation_id, user_id)
    require_can_change_membership(session, viewer, team, user, body.role)
    with audit.keeping_refusals(session):
        team_actions.add_to_team(
            session, team=team, user=user, role=body.role, actor=admin_actor(viewer)
        )
    session.commit()
    return {"team": team_summary(team), "items": team_members(session, team)}


@bp.delete("/teams/<uuid:team_id>/members/<uuid:user_id>")
def remove_member(team_id: uuid.UUID, user_id: uuid.UUID) -> tuple[str, int]:
    viewer = current_viewer()
    session = db_session()
    team = team_actions.get_team(session, viewer.organisation_id, team_id)
    require_can_manage_team(session, viewer, team)
    user = get_user(session, viewer.organisation_id, user_id)
    if team_actions.get_membership(session, team, user) is None:
        raise NotFound(NOT_A_MEMBER)
    require_can_change_membership(session, viewer, team, user, None)
    # Read again under its lock: a removal that committed since the read above left nothing
    # to remove, and a DELETE of what is gone is a 404 however late it finds out.
    if not team_actions.remove_from_team(session, team=team, user=user, actor=admin_actor(viewer)):
        raise NotFound(NOT_A_MEMBER)
    session.commit()
    return "", 204
