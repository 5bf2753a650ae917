"""Admin API: the organisation's API tokens (Organisation Admin): list, create, revoke."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flask import Blueprint
from pydantic import AwareDatetime, Field

from models.actions import tokens as token_actions
from models.base import utcnow
from models.enums import TokenScope
from models.errors import InvalidInput
from models.queries.tokens import TOKEN_STATUSES, list_tokens, token_view
from webhooks.api.described import takes_body
from webhooks.api.params import bool_param, choice_param
from webhooks.auth import admin_actor, current_admin, current_token_id
from webhooks.body import RequestBody, parse_body
from webhooks.context import db_session

bp = Blueprint("tokens", __name__, url_prefix="/api/v1")


class CreateToken(RequestBody):
    """An admin token acts as the caller; a token of any other scope acts as its system."""

    scope: TokenScope = Field(strict=False)
    name: str = Field(default="", max_length=200)
    expires_at: AwareDatetime | None = Field(default=None, strict=False)
    expires_in_days: int | None = Field(default=None, ge=1, le=token_actions.MAX_LIFETIME.days)


@bp.get("/tokens")
def index() -> dict[str, Any]:
    """The organisation's tokens, newest first; never their secrets"""
    viewer = current_admin()
    status = choice_param("status", TOKEN_STATUSES)
    return {"items": list_tokens(db_session(), viewer.organisation_id, now=utcnow(), status=status)}


@bp.post("/tokens")
@takes_body(CreateToken)
def create() -> tuple[dict[str, Any], int]:
    """Create a token; the answer shows its secret, once"""
    viewer = current_admin()
    body = parse_body(CreateToken)
    if body.scope is TokenScope.CONSOLE:
        raise InvalidInput("a console session starts by signing in at /console", field="scope")
    session = db_session()
    now = utcnow()
    lifetime = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    acting = None
    if body.scope is TokenScope.ADMIN:
        acting = token_actions.acting_user(session, viewer.user_id)
    issued = token_actions.create_token(
        session,
        organisation=viewer.organisation(session),
        scope=body.scope,
        user=acting,
        name=body.name,
        expires_at=token_actions.expiry_from(
            now=now, expires_at=body.expires_at, expires_in=lifetime
        ),
        actor=admin_actor(viewer),
    )
    session.commit()
    view = token_view(issued.token, now, acting.email if acting else None)
    return {**view, "token": issued.secret}, 201


@bp.delete("/tokens/<uuid:token_id>")
def revoke(token_id: uuid.UUID) -> tuple[str, int]:
    """Revoke a token; the caller's own needs revoke_own=true"""
    viewer = current_admin()
    session = db_session()
    token_actions.revoke_token_by_id(
        session,
        organisation_id=viewer.organisation_id,
        token_id=token_id,
        actor=admin_actor(viewer),
        caller_token_id=current_token_id(),
        revoke_own=bool_param("revoke_own"),
    )
    session.commit()
    return "", 204
