"""What both OpenID Connect sign-ins (enrollment pages and console) do the same way: start a
sign-in at the provider, claim it when the provider sends the browser back, check that the
answer is for that provider (models/actions/oidc_answers.py), then turn it into a verified
email."""

from __future__ import annotations

import secrets
from typing import Any

import structlog
from flask import request

from connectors import oidc
from models.actions import oidc_answers, oidc_providers, oidc_sign_ins
from models.actions.oidc_sign_ins import Claimed, SignInRefused
from models.base import utcnow
from models.entities import OidcProvider
from models.enums import SignInPlace
from models.errors import Unavailable
from webhooks.context import db_session, nothing_held_while_calling, settings

log = structlog.get_logger(__name__)
# The provider's error and error_description are kept (audit, log) up to this length.
PROVIDER_TEXT_LIMIT = 200


def begin(provider: OidcProvider, place: SignInPlace, **invitation: Any) -> tuple[str, str]:
    """A sign-in stored and committed: the provider's URL to send the browser to, and the
    browser secret its cookie must carry back."""
    callback_id = oidc_providers.callback_in_use(provider)
    client = client_of(provider, place, callback_id)
    nothing_held_while_calling()
    try:
        sign_in = oidc.authorization_request(client, ask_again=request.args.get("again") == "1")
    except oidc.OidcError as exc:
        raise Unavailable(f"the sign-in provider cannot be used: {exc.reason}") from None
    browser = secrets.token_urlsafe(32)
    session = db_session()
    oidc_sign_ins.start(
        session,
        place=place,
        organisation_id=provider.organisation_id,
        request=sign_in,
        issuer=provider.issuer,
        callback_id=callback_id,
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


def client_answering(claimed: Claimed, place: SignInPlace, arrived_at: str) -> oidc.Client:
    """The client of the provider the claimed sign-in was started with, if the answer is
    for it (arrived at its callback, `arrived_at`), or SignInRefused."""
    provider = oidc_answers.provider_answering(
        claimed,
        provider=oidc_providers.provider_for(db_session(), claimed.organisation_id),
        arrived_at=arrived_at,
    )
    return client_of(provider, place, claimed.callback_id)


def client_of(provider: OidcProvider, place: SignInPlace, callback_id: str) -> oidc.Client:
    config = settings()
    return oidc_providers.client(
        provider,
        secret_key=config.secret_key,
        base_url=config.public_base_url,
        policy=config.outbound_policy(),
        place=place,
        callback_id=callback_id,
    )


def verified_identity(client: oidc.Client, claimed: Claimed) -> tuple[str, str]:
    """The answer's issuer checked, the code exchanged and the ID token checked: the email the
    provider vouches for and the subject it said (who signed in there), or SignInRefused (the
    provider's own refusal included)."""
    nothing_held_while_calling()
    try:
        metadata = oidc.discover(client)
        oidc_answers.check_issuer(
            claimed,
            issuer=client.issuer,
            response_issuer=request.args.get("iss"),
            always_sent=oidc.always_sends_issuer(metadata),
        )
        if "error" in request.args:
            raise _provider_refused(claimed)
        claims = oidc.finish(
            client,
            code=request.args.get("code", ""),
            code_verifier=claimed.code_verifier,
            nonce=claimed.nonce,
            metadata=metadata,
        )
    except oidc.OidcError as exc:
        log.info(
            "oidc.answer_refused", organisation_id=str(claimed.organisation_id), reason=exc.reason
        )
        raise SignInRefused(exc.reason, outcome="provider_refused") from None
    return oidc_sign_ins.verified_email(claims), claims.subject


def _provider_refused(claimed: Claimed) -> SignInRefused:
    """The provider's own refusal (RFC 6749 section 4.1.2.1): its words are whatever the
    request carried, so they are logged and audited, and the page shows a fixed text
    (webhooks/sign_in_refusals.py); its error_uri is ignored."""
    error = request.args.get("error", "")[:PROVIDER_TEXT_LIMIT]
    description = request.args.get("error_description", "")[:PROVIDER_TEXT_LIMIT]
    log.info(
        "oidc.provider_refused",
        organisation_id=str(claimed.organisation_id),
        error=error,
        error_description=description,
    )
    said = f"{error}: {description}" if description else error
    return SignInRefused(f"the provider did not sign you in ({said})", outcome="provider_refused")
