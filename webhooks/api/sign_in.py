"""Admin API: the organisation's OpenID Connect provider for the enrollment pages."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from pydantic import Field

from models.access import Viewer
from models.actions import oidc_providers
from webhooks.api.described import takes_body
from webhooks.auth import admin_actor, current_admin
from webhooks.body import RequestBody, parse_body
from webhooks.context import db_session, settings

bp = Blueprint("sign_in", __name__, url_prefix="/api/v1")


class SetOidcProvider(RequestBody):
    issuer: str = Field(min_length=1, max_length=2000)
    client_id: str = Field(min_length=1, max_length=500)
    client_secret: str = Field(min_length=1, max_length=1000)
    display_name: str | None = Field(default=None, max_length=100)
    # true: the callback every organisation shares (registered before providers had their own)
    shared_callback: bool | None = None


@bp.get("/sign-in/oidc")
def show() -> dict[str, Any]:
    """The OpenID Connect provider and the redirect URI to register there; never the secret"""
    return _describe(current_admin())


@bp.put("/sign-in/oidc")
@takes_body(SetOidcProvider)
def configure() -> dict[str, Any]:
    """Set or replace the provider invitees sign in with; the secret is stored encrypted.
    A new provider comes back to redirect URIs of its own; shared_callback true keeps (or puts)
    it on the callback every organisation shares, false moves it to its own."""
    viewer = current_admin()
    body = parse_body(SetOidcProvider)
    session = db_session()
    config = settings()
    oidc_providers.configure(
        session,
        organisation=viewer.organisation(session),
        secret_key=config.secret_key,
        actor=admin_actor(viewer),
        policy=config.outbound_policy(),
        issuer=body.issuer,
        client_id=body.client_id,
        client_secret=body.client_secret,
        display_name=body.display_name,
        shared_callback=body.shared_callback,
    )
    session.commit()
    return _describe(viewer)


@bp.delete("/sign-in/oidc")
def clear() -> tuple[str, int]:
    """Remove the provider"""
    viewer = current_admin()
    session = db_session()
    oidc_providers.clear(
        session, organisation=viewer.organisation(session), actor=admin_actor(viewer)
    )
    session.commit()
    return "", 204


def _describe(viewer: Viewer) -> dict[str, Any]:
    provider = oidc_providers.provider_for(db_session(), viewer.organisation_id)
    return oidc_providers.describe(provider, base_url=settings().public_base_url)
