"""Signing in to the console and out: with the organisation's OpenID Connect provider
(webhooks/console/oidc.py), or, where it has none, an admin token exchanged once for a session.
Every sign-in and every refusal is audited."""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask import Response, redirect, request, url_for

from models.actions import console_sessions, oidc_providers, sign_in_audit
from models.actions.console_sessions import ConsoleSession
from models.actions.provider_accounts import ProviderAccount
from models.actions.sign_in_audit import SignInMethod, SignInRefused
from models.entities import Organisation
from models.enums import SignInPlace
from models.secrets import same_text
from webhooks import sign_in_refusals
from webhooks.console.web import (
    bp,
    clear_session_cookie,
    page,
    sent_form,
    set_session_cookie,
    set_sign_in_cookie,
    sign_in_csrf,
    signed_in,
)
from webhooks.context import db_session, settings


@bp.get("/sign-in")
def sign_in_form() -> Response:
    """The sign-in page; given an organisation, its "Sign in with <provider>" link (a link:
    the page's form-action 'self' would stop a form's redirect to the provider)."""
    slug = request.args.get("organisation", "").strip().lower()[:64]
    if not slug:
        return _form()
    found = oidc_providers.provider_by_slug(db_session(), slug)
    if found is None:
        return _form(
            error=f"The organisation {slug!r} has no OpenID Connect sign-in; check its short "
            "name, or sign in with an admin token.",
            status=404,
            organisation=slug,
        )
    return _form(organisation=slug, provider=found[1].display_name)


@bp.post("/sign-in")
def sign_in() -> Response:
    expected, fresh = sign_in_csrf()
    form = sent_form()
    if fresh or not same_text(form.get("csrf", ""), expected):
        return _form(error="The sign-in form had expired; it has been reloaded: try again.")
    session = db_session()
    try:
        started = console_sessions.sign_in_with_token(
            session, secret=form.get("token", ""), lifetime=session_lifetime()
        )
    except SignInRefused as refused:
        audit_refusal(refused, method=SignInMethod.ADMIN_TOKEN)
        return _form(error=refused.message, status=401)
    session.commit()
    return start(started)


def start(started: ConsoleSession) -> Response:
    """Hand a started session to the browser and open the overview."""
    response: Response = redirect(url_for("console.overview"), code=303)  # type: ignore[assignment]
    return set_session_cookie(response, started)


def start_for_verified_email(
    organisation_id: uuid.UUID, email: str, account: ProviderAccount
) -> Response:
    """Sign in the person an identity provider has verified (OpenID Connect): a session of
    the organisation's admin or manager with this email, or a page saying why not."""
    session = db_session()
    try:
        started = console_sessions.sign_in_verified_email(
            session,
            organisation_id=organisation_id,
            email=email,
            lifetime=session_lifetime(),
            account=account,
        )
    except SignInRefused as refused:
        return refusal_page(refused, organisation_id=organisation_id)
    session.commit()
    return start(started)


def refusal_page(refused: SignInRefused, *, organisation_id: uuid.UUID | None) -> Response:
    """A refused OpenID Connect sign-in: audited, nothing else kept, and a page saying why
    in a fixed text (the refusal's message, with what the provider said, is audited)."""
    audit_refusal(refused, method=SignInMethod.OIDC, organisation_id=organisation_id)
    known = refused.organisation_id or organisation_id
    organisation = db_session().get(Organisation, known) if known else None
    return page(
        "sign_in_refused.html",
        code=403,
        reason=sign_in_refusals.shown(refused),
        slug=organisation.slug if organisation else "",
    )


def audit_refusal(
    refused: SignInRefused, *, method: SignInMethod, organisation_id: uuid.UUID | None = None
) -> None:
    """Roll back whatever the attempt started, then record the refusal on its own."""
    session = db_session()
    session.rollback()
    sign_in_audit.refused(
        session, refused, place=SignInPlace.CONSOLE, method=method, organisation_id=organisation_id
    )
    session.commit()


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


def _form(
    *, error: str = "", status: int = 200, organisation: str = "", provider: str = ""
) -> Response:
    value, fresh = sign_in_csrf()
    response = page(
        "sign_in.html",
        code=status,
        error=error,
        sign_in_csrf=value,
        hours=f"{settings().console_session_hours:g}",
        organisation=organisation,
        provider=provider,
    )
    return set_sign_in_cookie(response, value) if fresh else response
