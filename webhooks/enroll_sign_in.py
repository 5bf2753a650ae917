"""Sign in with the organisation's OpenID Connect provider from an invitation's page:
/enroll/<token>/sign-in sends the browser to the provider, /enroll/oidc/callback/<callback id>
(the provider's own; /enroll/oidc/callback for one registered before those) comes back,
verifies who signed in and returns to the invitation, where the usual checks apply. Every
outcome of the callback is audited (models/actions/sign_in_audit.py)."""

from __future__ import annotations

from flask import Blueprint, redirect
from werkzeug.wrappers import Response

from models.actions import invitations as invitation_actions
from models.actions import oidc_providers, oidc_sign_ins, sign_in_audit
from models.actions.oidc_sign_ins import Claimed, SignInRefused
from models.actions.provider_accounts import ProviderAccount
from models.actions.sign_in_audit import SignInMethod
from models.entities import Invitation, OidcProvider
from models.enums import SignInPlace
from models.errors import Unavailable
from webhooks import oidc_callback
from webhooks.context import db_session
from webhooks.enroll import acceptable
from webhooks.enroll_identity import remember, set_cookie
from webhooks.html_pages import harden

bp = Blueprint("enroll_sign_in", __name__)
bp.after_request(harden)

BROWSER_COOKIE = "odock_oidc_browser"
PLACE = SignInPlace.ENROLLMENT


@bp.get("/enroll/<token>/sign-in")
def begin(token: str) -> Response:
    invitation = acceptable(token)
    url, browser = oidc_callback.begin(
        _provider(invitation), PLACE, invitation=invitation, link_token=token
    )
    response = redirect(url, 303)
    set_cookie(response, BROWSER_COOKIE, browser, oidc_sign_ins.LIFETIME)
    return response


@bp.get("/enroll/oidc/callback", defaults={"callback_id": ""})
@bp.get("/enroll/oidc/callback/<callback_id>")
def callback(callback_id: str) -> Response:
    session = db_session()
    claimed: Claimed | None = None
    try:
        claimed = oidc_callback.claim(PLACE, BROWSER_COOKIE)
        session.commit()  # spent now, whatever follows: a replay of this callback is refused
        return _signed_in(claimed, callback_id)
    except SignInRefused as refused:
        session.rollback()
        sign_in_audit.refused(
            session,
            refused,
            place=PLACE,
            method=SignInMethod.OIDC,
            organisation_id=claimed.organisation_id if claimed else None,
            invitation_id=claimed.invitation_id if claimed else None,
        )
        session.commit()
        raise


def _signed_in(claimed: Claimed, callback_id: str) -> Response:
    """Who the provider says signed in (the email, and the account bound to the person when
    they accept), remembered for the invitation's page, which then shows the name form or the
    wrong-account state."""
    invitation = acceptable(claimed.link_token)
    client = oidc_callback.client_answering(claimed, PLACE, callback_id)
    email, subject = oidc_callback.verified_identity(client, claimed)
    _audit_signed_in(invitation, email)
    db_session().commit()
    response = redirect(f"/enroll/{claimed.link_token}", 303)
    remember(response, invitation, email, ProviderAccount(client.issuer, subject))
    response.delete_cookie(BROWSER_COOKIE, path="/enroll/")
    return response


def _audit_signed_in(invitation: Invitation, email: str) -> None:
    session = db_session()
    if invitation_actions.is_invited_email(invitation, email):
        sign_in_audit.signed_in(
            session,
            place=PLACE,
            method=SignInMethod.OIDC,
            organisation_id=invitation.organisation_id,
            email=email,
            invitation_id=invitation.id,
        )
        return
    wrong = SignInRefused(
        f"signed in as {email}, not the invited email", outcome="wrong_account", email=email
    )
    sign_in_audit.refused(
        session,
        wrong,
        place=PLACE,
        method=SignInMethod.OIDC,
        organisation_id=invitation.organisation_id,
        invitation_id=invitation.id,
    )


def _provider(invitation: Invitation) -> OidcProvider:
    provider = oidc_providers.provider_for(db_session(), invitation.organisation_id)
    if provider is None:
        raise Unavailable("this organisation has not set up a sign-in provider")
    return provider
