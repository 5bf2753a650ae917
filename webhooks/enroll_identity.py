"""Who is signed in on the enrollment pages: the sign-in proxy's header, or the email an
OpenID Connect sign-in verified for this invitation with the provider account that signed in
(a signed cookie, scoped to /enroll/; the account is bound to the person on acceptance)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import request
from werkzeug.wrappers import Response

from models.actions import oidc_providers
from models.actions.provider_accounts import ProviderAccount
from models.entities import Invitation
from models.errors import DomainError
from models.secrets import hash_secret
from models.signed_links import make_token, read_token
from webhooks.context import db_session, settings

IDENTITY_COOKIE = "odock_enroll_identity"
IDENTITY_PURPOSE = "enroll-identity"
IDENTITY_LIFETIME = timedelta(hours=1)


@dataclass(frozen=True)
class SignedIn:
    """The email someone is signed in with; `account` when a provider said who (OpenID
    Connect), None behind the sign-in proxy."""

    email: str
    account: ProviderAccount | None = None


def signed_in(invitation: Invitation) -> SignedIn | None:
    """Who is signed in on this invitation's pages, or None."""
    header = settings().enrollment_identity_header
    value = request.headers.get(header, "").strip() if header else ""
    return SignedIn(value) if value else _oidc_identity(invitation)


def signed_in_email(invitation: Invitation) -> str | None:
    """The email someone is signed in with on this invitation's pages, or None."""
    identity = signed_in(invitation)
    return identity.email if identity else None


def remember(
    response: Response, invitation: Invitation, email: str, account: ProviderAccount
) -> None:
    """Keep the email an OpenID Connect sign-in verified and the account that signed in, for
    this invitation only. The issuer is kept as a hash (it may be long; the cookie is not):
    the sign-in counts while the organisation's provider is still that issuer."""
    token = make_token(
        settings().secret_key,
        purpose=IDENTITY_PURPOSE,
        subject=str(invitation.id),
        actor=email,
        lifetime=IDENTITY_LIFETIME,
        extra={"sub": account.subject, "iss": hash_secret(account.issuer)},
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


def _oidc_identity(invitation: Invitation) -> SignedIn | None:
    cookie = request.cookies.get(IDENTITY_COOKIE)
    if not cookie:
        return None
    try:
        claim = read_token(settings().secret_key, cookie, purpose=IDENTITY_PURPOSE)
    except DomainError:
        return None  # forged, expired or another purpose: nobody is signed in
    if claim.subject != str(invitation.id):
        return None
    provider = oidc_providers.provider_for(db_session(), invitation.organisation_id)
    subject, issuer_hash = claim.extra.get("sub"), claim.extra.get("iss")
    if provider is None or not subject or issuer_hash != hash_secret(provider.issuer):
        return None  # signed in at a provider this organisation no longer uses
    return SignedIn(claim.actor, ProviderAccount(provider.issuer, subject))
