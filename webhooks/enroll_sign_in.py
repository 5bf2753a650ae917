"""Sign in with the organisation's OpenID Connect provider from an invitation's page:
/enroll/<token>/sign-in sends the browser to the provider, /enroll/oidc/callback comes back,
verifies who signed in and returns to the invitation, where the usual checks apply."""

from __future__ import annotations

import secrets

from flask import Blueprint, redirect, request
from werkzeug.wrappers import Response

from connectors import oidc
from models.actions import oidc_providers, oidc_sign_ins
from models.base import utcnow
from models.entities import Invitation
from models.errors import Unavailable
from webhooks.context import db_session, settings
from webhooks.enroll import acceptable
from webhooks.enroll_identity import remember, set_cookie
from webhooks.html_pages import harden

bp = Blueprint("enroll_sign_in", __name__)
bp.after_request(harden)

BROWSER_COOKIE = "odock_oidc_browser"


@bp.get("/enroll/<token>/sign-in")
def begin(token: str) -> Response:
    invitation = acceptable(token)
    client = _client(invitation)
    try:
        sign_in = oidc.authorization_request(client, ask_again=request.args.get("again") == "1")
    except oidc.OidcError as exc:
        raise Unavailable(f"the sign-in provider cannot be used: {exc.reason}") from None
    browser = secrets.token_urlsafe(32)
    session = db_session()
    oidc_sign_ins.start(
        session,
        invitation=invitation,
        link_token=token,
        request=sign_in,
        browser=browser,
        secret_key=settings().secret_key,
        now=utcnow(),
    )
    session.commit()
    response = redirect(sign_in.url, 303)
    set_cookie(response, BROWSER_COOKIE, browser, oidc_sign_ins.LIFETIME)
    return response


@bp.get("/enroll/oidc/callback")
def callback() -> Response:
    session = db_session()
    claimed = oidc_sign_ins.claim(
        session,
        state=request.args.get("state", ""),
        browser=request.cookies.get(BROWSER_COOKIE, ""),
        secret_key=settings().secret_key,
        now=utcnow(),
    )
    session.commit()  # spent now, whatever follows: a replay of this callback is refused
    if "error" in request.args:
        reason = request.args.get("error_description") or request.args["error"]
        raise oidc_sign_ins.SignInRefused(f"the provider did not sign you in: {reason[:200]}")
    invitation = acceptable(claimed.link_token)
    try:
        claims = oidc.finish(
            _client(invitation),
            code=request.args.get("code", ""),
            code_verifier=claimed.code_verifier,
            nonce=claimed.nonce,
        )
    except oidc.OidcError as exc:
        raise oidc_sign_ins.SignInRefused(exc.reason) from None
    email = oidc_sign_ins.verified_email(claims)
    response = redirect(f"/enroll/{claimed.link_token}", 303)
    remember(response, invitation, email)
    response.delete_cookie(BROWSER_COOKIE, path="/enroll/")
    return response


def _client(invitation: Invitation) -> oidc.Client:
    provider = oidc_providers.provider_for(db_session(), invitation.organisation_id)
    if provider is None:
        raise Unavailable("this organisation has not set up a sign-in provider")
    config = settings()
    return oidc_providers.client(
        provider,
        secret_key=config.secret_key,
        base_url=config.public_base_url,
        policy=config.outbound_policy(),
    )
