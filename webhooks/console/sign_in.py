"""Signing in to the console (an admin token exchanged once for a session) and out."""

from __future__ import annotations

import hmac
import uuid
from datetime import timedelta

from flask import Response, redirect, request, url_for

from models.actions import console_sessions
from models.actions.console_sessions import ConsoleSession, SignInRefused
from webhooks.console.web import (
    bp,
    clear_session_cookie,
    page,
    set_session_cookie,
    set_sign_in_cookie,
    sign_in_csrf,
    signed_in,
)
from webhooks.context import db_session, settings


@bp.get("/sign-in")
def sign_in_form() -> Response:
    return _form()


@bp.post("/sign-in")
def sign_in() -> Response:
    expected, fresh = sign_in_csrf()
    if fresh or not hmac.compare_digest(request.form.get("csrf", ""), expected):
        return _form(error="The sign-in form had expired; it has been reloaded: try again.")
    session = db_session()
    try:
        started = console_sessions.sign_in_with_token(
            session, secret=request.form.get("token", ""), lifetime=session_lifetime()
        )
    except SignInRefused as refused:
        session.rollback()
        return _form(error=refused.message, status=401)
    session.commit()
    return start(started)


def start(started: ConsoleSession) -> Response:
    """Hand a started session to the browser and open the overview (the seam a sign-in
    provider calls once it has verified who the person is; see start_for_verified_email)."""
    response: Response = redirect(url_for("console.overview"), code=303)  # type: ignore[assignment]
    return set_session_cookie(response, started)


def start_for_verified_email(organisation_id: uuid.UUID, email: str, method: str) -> Response:
    """Sign in the person an identity provider has verified (OpenID Connect): a session of
    the organisation's admin or manager with this email, or the sign-in page saying why not."""
    session = db_session()
    try:
        started = console_sessions.sign_in_verified_email(
            session,
            organisation_id=organisation_id,
            email=email,
            lifetime=session_lifetime(),
            method=method,
        )
    except SignInRefused as refused:
        session.rollback()
        return _form(error=refused.message, status=403)
    session.commit()
    return start(started)


@bp.post("/sign-out")
def sign_out() -> Response:
    current = signed_in()
    session = db_session()
    console_sessions.sign_out(session, token_id=current.token_id, viewer=current.viewer)
    session.commit()
    response: Response = redirect(url_for("console.sign_in_form", done="signed_out"), code=303)  # type: ignore[assignment]
    return clear_session_cookie(response)


def session_lifetime() -> timedelta:
    return timedelta(hours=settings().console_session_hours)


def _form(*, error: str = "", status: int = 200) -> Response:
    value, fresh = sign_in_csrf()
    response = page(
        "sign_in.html",
        code=status,
        error=error,
        sign_in_csrf=value,
        hours=f"{settings().console_session_hours:g}",
        oidc_url="",
    )
    return set_sign_in_cookie(response, value) if fresh else response
