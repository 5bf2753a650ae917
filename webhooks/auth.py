"""Bearer-token authentication for the admin API; the token decides the organisation."""

from __future__ import annotations

from typing import NoReturn

import structlog
from flask import g, request

from models.access import Viewer
from models.actions.tokens import acting_user, authenticate
from models.actor import Actor
from models.entities import ApiToken
from models.enums import Source, TokenScope
from webhooks.context import db_session
from webhooks.errors import Unauthorized

log = structlog.get_logger(__name__)


def bearer_secret() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


def require_token(scope: TokenScope) -> ApiToken:
    token = authenticate(db_session(), secret=bearer_secret(), scope=scope)
    if token is None:
        refuse(scope)
    return token


def refuse(scope: TokenScope) -> NoReturn:
    # Say why without the secret itself: its presence and the scheme used are enough.
    scheme = request.headers.get("Authorization", "").partition(" ")[0][:20]
    log.warning("auth.rejected", scope=scope.value, scheme=scheme or None)
    raise Unauthorized("a valid bearer token is required")


def current_viewer() -> Viewer:
    """The signed-in admin-API caller, resolved once per request."""
    if "viewer" not in g:
        token = require_token(TokenScope.ADMIN)
        g.viewer = Viewer.for_user(acting_user(db_session(), token))
    viewer: Viewer = g.viewer
    return viewer


def admin_actor(viewer: Viewer) -> Actor:
    return Actor(Source.ADMIN, viewer.name, viewer.user_id)
