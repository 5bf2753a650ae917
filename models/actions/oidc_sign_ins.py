"""OpenID Connect sign-ins under way, from an invitation's page or the console: each is kept
from the redirect to its callback, used once, at the place and in the browser that started
it, within a few minutes; only a verified email counts."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from connectors.oidc import AuthorizationRequest, IdTokenClaims
from models import encryption
from models.actions.sign_in_audit import SignInRefused
from models.entities import Invitation, OidcSignIn
from models.enums import SignInPlace
from models.secrets import hash_secret

__all__ = ["LIFETIME", "Claimed", "SignInRefused", "claim", "start", "verified_email"]

PURPOSE = "oidc-sign-in"
LIFETIME = timedelta(minutes=10)
KEPT_FOR = timedelta(days=1)  # spent or abandoned sign-ins are deleted after this


@dataclass(frozen=True)
class Claimed:
    """What the callback needs to finish the sign-in it belongs to."""

    organisation_id: uuid.UUID
    invitation_id: uuid.UUID | None
    link_token: str  # the invitation link to return to; empty for the console
    nonce: str
    code_verifier: str
    issuer: str | None  # the provider it was started with (None: started before this was kept)
    callback_id: str  # the redirect URI it asked to come back to ("": the shared one)


def start(
    session: Session,
    *,
    place: SignInPlace,
    organisation_id: uuid.UUID,
    request: AuthorizationRequest,
    issuer: str,
    callback_id: str,
    browser: str,
    secret_key: str,
    now: datetime,
    invitation: Invitation | None = None,
    link_token: str = "",
) -> None:
    """Keep what the callback needs; `browser` is the random value of this browser's cookie,
    `issuer` and `callback_id` the provider and the redirect URI the request names."""
    sealed = json.dumps(
        {
            "token": link_token,
            "nonce": request.nonce,
            "verifier": request.code_verifier,
            "issuer": issuer,
            "callback": callback_id,
        }
    )
    session.execute(delete(OidcSignIn).where(OidcSignIn.created_at < now - KEPT_FOR))
    session.add(
        OidcSignIn(
            state_hash=hash_secret(request.state),
            browser_hash=hash_secret(browser),
            place=place,
            organisation_id=organisation_id,
            invitation_id=invitation.id if invitation else None,
            sealed=encryption.encrypt(secret_key, sealed, purpose=PURPOSE),
            created_at=now,
        )
    )
    session.flush()


def claim(
    session: Session,
    *,
    place: SignInPlace,
    state: str,
    browser: str,
    secret_key: str,
    now: datetime,
) -> Claimed:
    """The sign-in `state` belongs to, spent at once (single use under concurrency too)."""
    sign_in = session.scalar(select(OidcSignIn).where(OidcSignIn.state_hash == hash_secret(state)))
    if sign_in is None or not state or sign_in.place is not place:
        raise SignInRefused(
            "this sign-in is not one this service started (its state is unknown)",
            outcome="state_unknown",
        )
    _check_usable(sign_in, browser=browser, now=now)
    spent = session.execute(
        update(OidcSignIn)
        .where(OidcSignIn.id == sign_in.id, OidcSignIn.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise _refused(sign_in, "this sign-in was already used", "state_used")
    kept = json.loads(encryption.decrypt(secret_key, sign_in.sealed, purpose=PURPOSE))
    return Claimed(
        organisation_id=sign_in.organisation_id,
        invitation_id=sign_in.invitation_id,
        link_token=kept["token"],
        nonce=kept["nonce"],
        code_verifier=kept["verifier"],
        issuer=kept.get("issuer"),
        callback_id=kept.get("callback", ""),
    )


def _check_usable(sign_in: OidcSignIn, *, browser: str, now: datetime) -> None:
    if sign_in.used_at is not None:
        raise _refused(sign_in, "this sign-in was already used", "state_used")
    if sign_in.browser_hash != hash_secret(browser):
        raise _refused(sign_in, "this sign-in was started in another browser", "other_browser")
    if sign_in.created_at < now - LIFETIME:
        raise _refused(sign_in, "this sign-in took too long and has lapsed", "lapsed")


def _refused(sign_in: OidcSignIn, message: str, outcome: str) -> SignInRefused:
    return SignInRefused(message, outcome=outcome, organisation_id=sign_in.organisation_id)


def verified_email(claims: IdTokenClaims) -> str:
    """The email the provider vouches for (connectors/oidc.py:email_verified says when it
    does); an unverified or missing one is refused."""
    if not claims.email:
        raise SignInRefused(
            "the provider did not say which email you signed in with", outcome="no_email"
        )
    if not claims.email_verified:
        raise SignInRefused(
            f"the provider has not verified the email {claims.email}; verify it there first",
            outcome="unverified_email",
            email=claims.email,
        )
    return claims.email
