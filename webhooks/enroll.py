"""The invitee's pages at /enroll/<token>: see the invitation, then accept it (no JavaScript).

The signed-in identity comes from the organisation's OpenID Connect provider
(webhooks/enroll_sign_in.py) or from a trusted header set by a sign-in proxy in front of this
service (ENROLLMENT_IDENTITY_HEADER): see webhooks/enroll_identity.py. The profile name comes
from the form.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import structlog
from flask import Blueprint, Response, g, render_template
from werkzeug.exceptions import HTTPException

from connectors.invitation_email import ROLE_NAMES
from models.actions import invitations as invitation_actions
from models.actions import oidc_providers
from models.actions.oidc_sign_ins import SignInRefused
from models.base import utcnow
from models.entities import Invitation, Organisation
from models.entities.user import email_key
from models.enums import UserStatus
from models.errors import Conflict, DomainError, InvalidInput, Unavailable
from models.secrets import same_text
from webhooks import sign_in_refusals
from webhooks.body import FormRejected, FormTooLarge, form_fields
from webhooks.context import db_session, settings
from webhooks.enroll_identity import signed_in, signed_in_email
from webhooks.errors import register_protocol_renderer
from webhooks.html_pages import harden

log = structlog.get_logger(__name__)

bp = Blueprint("enroll", __name__, template_folder="templates")


bp.after_request(harden)


@bp.get("/enroll/<token>")
def show(token: str) -> str:
    invitation = acceptable(token)
    return _invitation_page(invitation, identity=signed_in_email(invitation))


@bp.post("/enroll/<token>")
def accept(token: str) -> tuple[str, int] | str:
    invitation = acceptable(token)
    who = signed_in(invitation)
    if who is None:
        return _invitation_page(invitation, identity=None), 401
    identity = who.email
    invitation_actions.check_acceptable(invitation, email=identity, now=utcnow())
    form = form_fields()  # at most ENROLLMENT_MAX_FORM_BYTES (webhooks.body_limits)
    if not same_text(form.get("form_key", ""), form_key(invitation, identity)):
        raise FormRejected("this form is out of date; open the invitation link again")
    session = db_session()
    try:
        accepted = invitation_actions.accept_signed_in(
            session, token=token, email=identity, name=form.get("name", ""), account=who.account
        )
    except (SignInRefused, invitation_actions.AccountExists):  # only the refusal's audit is kept
        session.commit()
        raise
    except InvalidInput as exc:
        session.rollback()
        page = _invitation_page(
            invitation, identity=identity, name=form.get("name", ""), name_error=exc.message
        )
        return page, 400
    session.commit()
    return render_template(
        "enroll/done.html",
        organisation=_organisation_name(invitation),
        role=ROLE_NAMES.get(accepted.user.role.value, accepted.user.role.value),
        user=accepted.user,
        pending=accepted.user.status is UserStatus.PENDING,
    )


def form_key(invitation: Invitation, identity: str) -> str:
    """Binds the form to this invitation's current link and this signed-in identity."""
    key = hashlib.sha256(b"odock-sync/enroll-form\0" + settings().secret_key.encode()).digest()
    message = f"{invitation.token_hash}:{email_key(identity)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def acceptable(token: str) -> Invitation:
    """The invitation behind the link, refused in the fixed order before anything else."""
    invitation = invitation_actions.find_by_token(db_session(), token)
    g.enroll_invitation = invitation
    invitation_actions.check_acceptable(invitation, email=None, now=utcnow())
    return invitation


def _invitation_page(
    invitation: Invitation, *, identity: str | None, name: str = "", name_error: str | None = None
) -> str:
    if identity is None:
        state = "sign_in"
    elif not invitation_actions.is_invited_email(invitation, identity):
        state = "wrong_account"
    else:
        state = "ready"
    return render_template(
        "enroll/invitation.html",
        state=state,
        identity=identity,
        form_key=form_key(invitation, identity) if identity and state == "ready" else "",
        name=name[:200],
        name_error=name_error,
        sign_in_with=_provider_name(invitation),
        **_details(invitation),
    )


def _provider_name(invitation: Invitation) -> str | None:
    """The name on the "Sign in with" link, when the organisation has a provider."""
    provider = oidc_providers.provider_for(db_session(), invitation.organisation_id)
    return provider.display_name if provider else None


def _details(invitation: Invitation) -> dict[str, Any]:
    return {
        "invitation": invitation,
        "organisation": _organisation_name(invitation),
        "role": ROLE_NAMES.get(invitation.role.value, invitation.role.value),
        "status": invitation_actions.effective_status(invitation, utcnow()).value,
        "expires": invitation.expires_at.strftime("%d %B %Y at %H:%M UTC"),
    }


def _organisation_name(invitation: Invitation) -> str:
    return db_session().get_one(Organisation, invitation.organisation_id).name


# --- the HTML error pages of /enroll ---------------------------------------------------------


@dataclass(frozen=True)
class ErrorPage:
    status: int
    kind: str
    title: str
    next_step: str


PAGES: list[tuple[type[Exception], ErrorPage]] = [
    (
        invitation_actions.InvitationUnknown,
        ErrorPage(
            404,
            "unknown",
            "This invitation link is not valid",
            "Check that you opened the whole link from the most recent invitation email; a "
            "resent invitation replaces the older link. If it still fails, ask the person who "
            "invited you to resend the invitation.",
        ),
    ),
    (
        invitation_actions.InvitationExpired,
        ErrorPage(
            410,
            "expired",
            "This invitation has expired",
            "Ask the person who invited you, or an organisation admin, to resend the "
            "invitation. You will get a new link by email.",
        ),
    ),
    (
        invitation_actions.InvitationRevoked,
        ErrorPage(
            410,
            "revoked",
            "This invitation was revoked",
            "An administrator withdrew this invitation. If you believe you should have access, "
            "contact your organisation's administrator.",
        ),
    ),
    (
        invitation_actions.InvitationUsed,
        ErrorPage(
            409,
            "used",
            "This invitation has already been used",
            "Sign in to Odock with the invited email. If you did not accept it yourself, tell "
            "your organisation's administrator at once.",
        ),
    ),
    (
        invitation_actions.WrongAccount,
        ErrorPage(
            403,
            "wrong_account",
            "You are signed in with a different account",
            "Sign out, then sign in with the invited email and open the link again.",
        ),
    ),
    (
        SignInRefused,
        ErrorPage(
            403,
            "sign_in_refused",
            "This sign-in could not be completed",
            "Nothing has changed. Open the invitation link again and choose Sign in; finish "
            "signing in within ten minutes, in the same browser.",
        ),
    ),
    (
        Unavailable,
        ErrorPage(
            503,
            "unavailable",
            "Sign-in is not available right now",
            "Try again in a few minutes; if it keeps failing, tell the person who invited you.",
        ),
    ),
    (
        FormTooLarge,
        ErrorPage(
            413,
            "too_large",
            "The form is too large",
            "Go back, shorten what you typed, and send the form again.",
        ),
    ),
    (
        InvalidInput,
        ErrorPage(
            400,
            "invalid",
            "The request could not be read",
            "Open the invitation link again and fill in the form.",
        ),
    ),
    (
        Conflict,
        ErrorPage(
            409,
            "conflict",
            "This invitation cannot be completed",
            "Contact your organisation's administrator.",
        ),
    ),
]

GENERIC = ErrorPage(
    500,
    "error",
    "Something went wrong",
    "Try again in a few minutes; if it keeps failing, contact your administrator.",
)


def render_error(error: Exception) -> Response:
    """Every error under /enroll as an HTML page with what to do next; never a traceback."""
    page, message = _page_for(error)
    invitation = g.get("enroll_invitation")
    context: dict[str, Any] = {"invitation": None}
    if invitation is not None and page.kind in {"expired", "revoked", "used", "wrong_account"}:
        context = _details(invitation)
    html = render_template(
        "enroll/error.html",
        kind=page.kind,
        title=page.title,
        message=message,
        next_step=page.next_step,
        **context,
    )
    return harden(Response(html, status=page.status, mimetype="text/html"))


def _page(kind: type[Exception]) -> ErrorPage:
    return next(page for known, page in PAGES if known is kind)


def _page_for(error: Exception) -> tuple[ErrorPage, str]:
    if isinstance(error, SignInRefused):  # its message may carry the provider's words
        return _page(SignInRefused), sign_in_refusals.shown(error)
    if isinstance(error, DomainError):
        page = next((page for kind, page in PAGES if isinstance(error, kind)), GENERIC)
        return page, error.message
    if isinstance(error, HTTPException):
        status = error.code or 500
        if status == 413:
            return _page(FormTooLarge), "The form is too large."
        if status == 404:
            return _page(invitation_actions.InvitationUnknown), "There is no such page."
        return ErrorPage(status, "http", error.name, GENERIC.next_step), error.description or ""
    log.exception("enroll.failed", error_type=type(error).__name__)
    return GENERIC, "An unexpected error occurred; it has been logged."


register_protocol_renderer("/enroll", render_error)
