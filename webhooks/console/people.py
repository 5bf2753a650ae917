"""A person: what revoking them would touch (the blast-radius preview), and Revoke."""

from __future__ import annotations

import uuid

from flask import Response

from models.access import require_admin, require_can_view_user, require_not_self
from models.actions import lifecycle
from models.enums import UserStatus
from models.queries.reviews import revocation_preview
from webhooks.api.schemas import RevokeUser
from webhooks.console.web import bp, done, form_body, page, signed_in
from webhooks.context import db_session


@bp.get("/people/<uuid:user_id>")
def person(user_id: uuid.UUID) -> Response:
    viewer = signed_in().viewer
    preview = revocation_preview(db_session(), viewer, user_id)
    return page("person.html", preview=preview, may_revoke=viewer.is_admin)


@bp.post("/people/<uuid:user_id>/revoke")
def revoke(user_id: uuid.UUID) -> Response:
    """The API's revoke: admins only, not oneself, through the lifecycle policy."""
    current = signed_in()
    require_admin(current.viewer)
    reason = form_body(RevokeUser).reason
    session = db_session()
    user = require_can_view_user(session, current.viewer, user_id)
    require_not_self(current.viewer, user, changes_access=True)
    pinning = user.status is UserStatus.REVOKED
    lifecycle.revoke(session, user=user, actor=current.actor, reason=reason)
    session.commit()
    return done("console.person", "kept_out" if pinning else "revoked", user_id=user_id)
