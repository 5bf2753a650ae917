"""What both OpenID Connect sign-ins (enrollment pages and console) do the same way: start a
sign-in at the provider, claim it when the provider sends the browser back, then turn the
provider's answer into a verified email."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from flask import request

from connectors import oidc
from models.actions import oidc_sign_ins
from models.actions.oidc_sign_ins import Claimed, SignInRefused
from models.base import utcnow
from models.enums import SignInPlace
from models.errors import Unavailable
from webhooks.context import db_session, settings


def begin(
    client: oidc.Client, place: SignInPlace, organisation_id: uuid.UUID, **invitation: Any
) -> tuple[str, str]:
    """A sign-in stored and committed: the provider's URL to send the browser to, and the
    browser secret its cookie must carry back."""
    try:
        sign_in = oidc.authorization_request(client, ask_again=request.args.get("again") == "1")
    except oidc.OidcError as exc:
        raise Unavailable(f"the sign-in provider cannot be used: {exc.reason}") from None
    browser = secrets.token_urlsafe(32)
    session = db_session()
    oidc_sign_ins.start(
        session,
        place=place,
        organisation_id=organisation_id,
        request=sign_in,
        browser=browser,
        secret_key=settings().secret_key,
        now=utcnow(),
        **invitation,
    )
    session.commit()
    return sign_in.url, browser


def claim(place: SignInPlace, browser_cookie: str) -> Claimed:
    """The sign-in this callback finishes, spent (the caller commits that at once)."""
    return oidc_sign_ins.claim(
        db_session(),
        place=place,
        state=request.args.get("state", ""),
        browser=request.cookies.get(browser_cookie, ""),
        secret_key=settings().secret_key,
        now=utcnow(),
    )


def verified_email(client: oidc.Client, claimed: Claimed) -> str:
    """The code exchanged and the ID token checked: the email the provider vouches for, or
    SignInRefused (the provider's own refusal included)."""
    return verified_identity(client, claimed)[0]


def verified_identity(client: oidc.Client, claimed: Claimed) -> tuple[str, str]:
    """As verified_email, with the subject the provider said (who signed in there)."""
    if "error" in request.args:
        reason = request.args.get("error_description") or request.args["error"]
        raise SignInRefused(
            f"the provider did not sign you in: {reason[:200]}", outcome="provider_refused"
        )
    try:
        claims = oidc.finish(
            client,
            code=request.args.get("code", ""),
            code_verifier=claimed.code_verifier,
            nonce=claimed.nonce,
            response_issuer=request.args.get("iss"),
        )
    except oidc.OidcError as exc:
        raise SignInRefused(exc.reason, outcome="provider_refused") from None
    return oidc_sign_ins.verified_email(claims), claims.subject
