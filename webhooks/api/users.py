"""Admin API: the Users table, the user detail page and the user lifecycle actions."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint

from models.access import require_admin, require_can_view_user, require_not_self
from models.actions import access_end, lifecycle
from models.actions import users as user_actions
from models.enums import Role, UserStatus
from models.errors import Conflict
from models.queries.users import UserFilter, list_users, user_detail, user_profile
from webhooks.api.params import enum_param, int_param, text_param, uuid_param
from webhooks.api.schemas import (
    CreateUser,
    DeclineUser,
    EditUser,
    ReactivateUser,
    RevokeUser,
    SetAccessEnd,
)
from webhooks.auth import admin_actor, current_viewer
from webhooks.body import NoFields, RequestBody, parse_body, parse_optional_body
from webhooks.context import db_session

bp = Blueprint("users", __name__, url_prefix="/api/v1")


@bp.get("/users")
def index() -> dict[str, Any]:
    filters = UserFilter(
        role=enum_param("role", Role),
        status=enum_param("status", UserStatus),
        team_id=uuid_param("team_id"),
        search=text_param("q"),
    )
    limit = int_param("limit", 50, low=1, high=200)
    page = list_users(
        db_session(), current_viewer(), filters, limit=limit, after=uuid_param("cursor")
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@bp.get("/me")
def me() -> dict[str, Any]:
    viewer = current_viewer()
    return user_detail(db_session(), viewer, viewer.user_id)  # type: ignore[arg-type]


@bp.get("/users/<uuid:user_id>")
def show(user_id: uuid.UUID) -> dict[str, Any]:
    return user_detail(db_session(), current_viewer(), user_id)


@bp.post("/users")
def create() -> tuple[dict[str, Any], int]:
    viewer = current_viewer()
    require_admin(viewer)
    body = parse_body(CreateUser)
    session = db_session()
    organisation = viewer.organisation(session)
    user = user_actions.create_user(
        session,
        organisation=organisation,
        email=body.email,
        name=body.name,
        role=body.role,
        actor=admin_actor(viewer),
    )
    session.commit()
    return user_profile(user), 201


@bp.patch("/users/<uuid:user_id>")
def edit(user_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_viewer()
    require_admin(viewer)
    body = parse_body(EditUser)
    session = db_session()
    user = require_can_view_user(session, viewer, user_id)
    changes_access = body.role not in (None, user.role) or body.status not in (None, user.status)
    require_not_self(viewer, user, changes_access=changes_access)
    actor = admin_actor(viewer)
    user_actions.edit_user(
        session, user=user, actor=actor, **body.model_dump(exclude_none=True, exclude={"status"})
    )
    if body.status is not None:
        outcome = lifecycle.change_status(session, user=user, status=body.status, actor=actor)
        if outcome is lifecycle.Outcome.REFUSED:
            # Nothing of the edit is kept; POST …/reactivate carries the explicit override.
            raise Conflict(lifecycle.USED_KEYS_REFUSAL)
    session.commit()
    return user_profile(user)


@bp.post("/users/<uuid:user_id>/approve")
def approve(user_id: uuid.UUID) -> dict[str, Any]:
    return _lifecycle(
        user_id,
        NoFields,
        lambda session, user, actor, _body: lifecycle.approve(session, user=user, actor=actor),
    )


@bp.post("/users/<uuid:user_id>/decline")
def decline(user_id: uuid.UUID) -> dict[str, Any]:
    return _lifecycle(
        user_id,
        DeclineUser,
        lambda session, user, actor, body: lifecycle.decline(
            session, user=user, actor=actor, reason=body.reason
        ),
    )


@bp.post("/users/<uuid:user_id>/revoke")
def revoke(user_id: uuid.UUID) -> dict[str, Any]:
    return _lifecycle(
        user_id,
        RevokeUser,
        lambda session, user, actor, body: lifecycle.revoke(
            session, user=user, actor=actor, reason=body.reason
        ),
    )


@bp.put("/users/<uuid:user_id>/access-end")
def set_access_end(user_id: uuid.UUID) -> dict[str, Any]:
    return _lifecycle(
        user_id,
        SetAccessEnd,
        lambda session, user, actor, body: access_end.set_access_end(
            session, user=user, ends_at=body.access_ends_at, actor=actor
        ),
        body_required=True,
    )


@bp.post("/users/<uuid:user_id>/reactivate")
def reactivate(user_id: uuid.UUID) -> dict[str, Any]:
    viewer = current_viewer()
    require_admin(viewer)
    body = parse_optional_body(ReactivateUser)
    session = db_session()
    user = require_can_view_user(session, viewer, user_id)
    require_not_self(viewer, user, changes_access=True)
    outcome = lifecycle.reactivate(
        session, user=user, actor=admin_actor(viewer), restore_used_keys=body.restore_used_keys
    )
    session.commit()  # a refusal too: it is in the audit trail
    if outcome is lifecycle.Outcome.REFUSED:
        raise Conflict(lifecycle.USED_KEYS_REFUSAL)
    return user_profile(user)


def _lifecycle(
    user_id: uuid.UUID, schema: type[RequestBody], operation: Any, *, body_required: bool = False
) -> dict[str, Any]:
    """Shared shape of the admin-only lifecycle actions: check, read, act, commit, answer."""
    viewer = current_viewer()
    require_admin(viewer)
    body = parse_body(schema) if body_required else parse_optional_body(schema)
    session = db_session()
    user = require_can_view_user(session, viewer, user_id)
    require_not_self(viewer, user, changes_access=True)
    operation(session, user, admin_actor(viewer), body)
    session.commit()
    return user_profile(user)
