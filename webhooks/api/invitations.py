"""Admin API: the Enrollment tab (invite, list, detail with delivery history, resend, revoke)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint

from models.actions import invitations as invitation_actions
from models.entities import Organisation
from models.enums import InvitationStatus
from models.queries.invitations import (
    InvitationFilter,
    invitation_detail,
    invitation_view,
    list_invitations,
)
from webhooks.api.described import takes_body
from webhooks.api.params import enum_param, int_param, text_param, uuid_param
from webhooks.api.schemas import CreateInvitation, LeaverPolicy, RefreshInvitations
from webhooks.auth import admin_actor, current_admin, current_viewer
from webhooks.body import no_fields, parse_body
from webhooks.context import db_session, settings

bp = Blueprint("invitations", __name__, url_prefix="/api/v1")


@bp.get("/invitations")
def index() -> dict[str, Any]:
    filters = InvitationFilter(
        status=enum_param("status", InvitationStatus), search=text_param("q", max_length=320)
    )
    limit = int_param("limit", 50, low=1, high=200)
    page = list_invitations(
        db_session(), current_viewer(), filters, limit=limit, after=uuid_param("cursor")
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@bp.post("/invitations")
def create() -> tuple[dict[str, Any], int]:
    viewer = current_viewer()
    body = parse_body(CreateInvitation)
    session = db_session()
    issued = invitation_actions.invite(
        session,
        viewer=viewer,
        email=body.email,
        role=body.role,
        teams=[invitation_actions.TeamInvite(t.team_id, t.role) for t in body.teams],
        expires_in_hours=body.expires_in_hours,
        actor=admin_actor(viewer),
        secret_key=settings().secret_key,
    )
    session.commit()
    return invitation_view(issued.invitation), 201


@bp.get("/invitations/<uuid:invitation_id>")
def show(invitation_id: uuid.UUID) -> dict[str, Any]:
    return invitation_detail(db_session(), current_viewer(), invitation_id)


@bp.post("/invitations/<uuid:invitation_id>/resend")
def resend(invitation_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_viewer()
    no_fields()
    session = db_session()
    issued = invitation_actions.resend(
        session,
        viewer=viewer,
        invitation_id=invitation_id,
        actor=admin_actor(viewer),
        secret_key=settings().secret_key,
    )
    session.commit()
    return invitation_view(issued.invitation)


@bp.post("/invitations/<uuid:invitation_id>/revoke")
def revoke(invitation_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_viewer()
    no_fields()
    session = db_session()
    invitation = invitation_actions.revoke(
        session, viewer=viewer, invitation_id=invitation_id, actor=admin_actor(viewer)
    )
    session.commit()
    return invitation_view(invitation)


@bp.get("/invitations/leaver-policy")
def leaver_policy() -> dict[str, Any]:
    """What revoking a person does to the invitations they sent (revoke or keep)"""
    viewer = current_admin()
    return _policy_view(viewer.organisation(db_session()))


@bp.put("/invitations/leaver-policy")
@takes_body(LeaverPolicy)
def set_leaver_policy() -> dict[str, Any]:
    """Set what revoking a person does to the invitations they sent (admins only)"""
    viewer = current_admin()
    body = parse_body(LeaverPolicy)
    session = db_session()
    organisation = viewer.organisation(session)
    invitation_actions.set_leaver_policy(
        session, organisation=organisation, policy=body.policy, actor=admin_actor(viewer)
    )
    session.commit()
    return _policy_view(organisation)


def _policy_view(organisation: Organisation) -> dict[str, Any]:
    return {"policy": organisation.settings.leaver_invitation_policy.value}


@bp.post("/invitations/refresh")
def refresh() -> dict[str, Any]:
    viewer = current_viewer()
    body = parse_body(RefreshInvitations)
    session = db_session()
    found = invitation_actions.refresh(
        session, viewer=viewer, invitation_ids=body.ids, actor=admin_actor(viewer)
    )
    session.commit()
    return {"items": [invitation_view(invitation) for invitation in found]}
