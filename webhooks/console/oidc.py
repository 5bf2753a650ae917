"""Sign in to the console with the organisation's OpenID Connect provider: the admin names
the organisation, /console/oidc/sign-in sends the browser to its provider (Authorization Code
with PKCE, state and nonce, as the enrollment pages do), /console/oidc/callback/<callback id>
(the provider's own; /console/oidc/callback for one registered before those) comes back, and
a verified email of the organisation's ACTIVE admin or manager gets a console session."""

from __future__ import annotations

from flask import Response, redirect, request, url_for

from models.actions import oidc_providers, oidc_sign_ins
from models.actions.oidc_sign_ins import Claimed, SignInRefused
from models.actions.provider_accounts import ProviderAccount
from models.enums import SignInPlace
from webhooks import oidc_callback
from webhooks.console.sign_in import refusal_page, start_for_verified_email
from webhooks.console.web import PREFIX, bp, secure_cookies
from webhooks.context import db_session

PLACE = SignInPlace.CONSOLE
BROWSER_COOKIE = "odock_console_oidc"


@bp.get("/oidc/sign-in")
def oidc_sign_in() -> Response:
    slug = request.args.get("organisation", "").strip().lower()
    found = oidc_providers.provider_by_slug(db_session(), slug)
    if found is None:  # the sign-in page says so
        return redirect(url_for("console.sign_in_form", organisation=slug[:64]), 303)  # type: ignore[return-value]
    url, browser = oidc_callback.begin(found[1], PLACE)
    response: Response = redirect(url, 303)  # type: ignore[assignment]
    response.set_cookie(
        BROWSER_COOKIE,
        browser,
        max_age=int(oidc_sign_ins.LIFETIME.total_seconds()),
        path=PREFIX,
        secure=secure_cookies(),
        httponly=True,
        samesite="Lax",  # sent on the provider's top-level redirect back
    )
    return response


@bp.get("/oidc/callback", defaults={"callback_id": ""})
@bp.get("/oidc/callback/<callback_id>")
def oidc_callback_page(callback_id: str) -> Response:
    session = db_session()
    claimed: Claimed | None = None
    try:
        claimed = oidc_callback.claim(PLACE, BROWSER_COOKIE)
        session.commit()  # spent now, whatever follows: a replay of this callback is refused
        client = oidc_callback.client_answering(claimed, PLACE, callback_id)
        email, subject = oidc_callback.verified_identity(client, claimed)
    except SignInRefused as refused:
        response = refusal_page(
            refused, organisation_id=claimed.organisation_id if claimed else None
        )
    else:
        account = ProviderAccount(issuer=client.issuer, subject=subject)
        response = start_for_verified_email(claimed.organisation_id, email, account)
    response.delete_cookie(BROWSER_COOKIE, path=PREFIX)
    return response
