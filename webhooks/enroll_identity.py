"""Who is signed in on the enrollment pages: the sign-in proxy's header, or the email an
OpenID Connect sign-in verified for this invitation (a signed cookie, scoped to /enroll/)."""

from __future__ import annotations

from datetime import timedelta

from flask import request
from werkzeug.wrappers import Response

from models.entities import Invitation
from models.errors import DomainError
from models.signed_links import make_token, read_token
from webhooks.context import settings

IDENTITY_COOKIE = "odock_enroll_identity"
IDENTITY_PURPOSE = "enroll-identity"
IDENTITY_LIFETIME = timedelta(hours=1)


def signed_in_email(invitation: Invitation) -> str | None:
    """The email someone is signed in with on this invitation's pages, or None."""
    header = settings().enrollment_identity_header
    value = request.headers.get(header, "").strip() if header else ""
    return value or _oidc_email(invitation)


def remember(response: Response, invitation: Invitation, email: str) -> None:
    """Keep the email an OpenID Connect sign-in verified, for this invitation only."""
    token = make_token(
        settings().secret_key,
        purpose=IDENTITY_PURPOSE,
        subject=str(invitation.id),
        actor=email,
        lifetime=IDENTITY_LIFETIME,
    )
    set_cookie(response, IDENTITY_COOKIE, token, IDENTITY_LIFETIME)


def set_cookie(response: Response, name: str, value: str, lifetime: timedelta) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(lifetime.total_seconds()),
        path="/enroll/",
        secure=settings().public_base_url.startswith("https:"),
        httponly=True,
        samesite="Lax",  # sent on the provider's top-level redirect back, not on cross-site posts
    )


def _oidc_email(invitation: Invitation) -> str | None:
    cookie = request.cookies.get(IDENTITY_COOKIE)
    if not cookie:
        return None
    try:
        claim = read_token(settings().secret_key, cookie, purpose=IDENTITY_PURPOSE)
    except DomainError:
        return None  # forged, expired or another purpose: nobody is signed in
    return claim.actor if claim.subject == str(invitation.id) else None
