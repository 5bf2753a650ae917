"""Bearer-token authentication for the admin API; the token decides the organisation."""

from __future__ import annotations

import uuid
from typing import NoReturn

import structlog
from flask import g, request

from models.access import Viewer, require_admin
from models.actions.tokens import TokenGrant, acting_user, cached_grant, record_use
from models.actor import Actor
from models.base import utcnow
from models.enums import Source, TokenScope
from webhooks.context import db_session, settings
from webhooks.errors import Unauthorized
from webhooks.route_credentials import BEARER_REQUIRED

log = structlog.get_logger(__name__)


def bearer_secret() -> str:
    # The header as WSGI hands it over: request.headers.get spells the key anew on each call.
    header = request.environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, secret = header.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


def require_token(scope: TokenScope) -> TokenGrant:
    """The request's live token of this scope (every scope comes through here), or a 401.
    A token revoked in another process is refused within SCIM_TOKEN_CACHE_SECONDS."""
    session = db_session()
    grant = cached_grant(
        session,
        secret=bearer_secret(),
        scope=scope,
        ttl_seconds=settings().scim_token_cache_seconds,
    )
    if grant is None:
        refuse(scope)
    if record_use(session, grant=grant, now=utcnow()):
        # Its own small transaction, before the request does anything: a request that only
        # reads, or fails, still leaves the token's last use behind.
        session.commit()
    g.token_grant = grant
    return grant


def current_token_id() -> uuid.UUID | None:
    """The id of the token this request was authenticated with, if any."""
    grant: TokenGrant | None = g.get("token_grant")
    return grant.token_id if grant else None


def refuse(scope: TokenScope) -> NoReturn:
    # Say why without the secret itself: its presence and the scheme used are enough.
    scheme = request.headers.get("Authorization", "").partition(" ")[0][:20]
    log.warning("auth.rejected", scope=scope.value, scheme=scheme or None)
    raise Unauthorized(BEARER_REQUIRED)


def current_viewer() -> Viewer:
    """The signed-in admin-API caller, resolved once per request."""
    if "viewer" not in g:
        grant = require_token(TokenScope.ADMIN)
        g.viewer = Viewer.for_user(acting_user(db_session(), grant.user_id))
    viewer: Viewer = g.viewer
    return viewer


def current_admin() -> Viewer:
    """The caller, who must be an Organisation Admin (else a 403)."""
    viewer = current_viewer()
    require_admin(viewer)
    return viewer


def admin_actor(viewer: Viewer) -> Actor:
    return Actor(Source.ADMIN, viewer.name, viewer.user_id)
