"""OpenID Connect sign-ins of invitees: each is kept from the redirect to its callback, used
once, in the browser that started it, within a few minutes; only a verified email counts."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from connectors.oidc import AuthorizationRequest, IdTokenClaims
from models import encryption
from models.entities import Invitation, OidcSignIn
from models.errors import Forbidden
from models.secrets import hash_secret

PURPOSE = "oidc-sign-in"
LIFETIME = timedelta(minutes=10)
KEPT_FOR = timedelta(days=1)  # spent or abandoned sign-ins are deleted after this


class SignInRefused(Forbidden):
    """The callback does not finish a sign-in this browser started (tampered, replayed, late)
    or the provider's answer is not acceptable; nothing changes."""

    code = "sign_in_refused"


@dataclass(frozen=True)
class Claimed:
    """What the callback needs to finish the sign-in it belongs to."""

    invitation_id: uuid.UUID
    link_token: str
    nonce: str
    code_verifier: str


def start(
    session: Session,
    *,
    invitation: Invitation,
    link_token: str,
    request: AuthorizationRequest,
    browser: str,
    secret_key: str,
    now: datetime,
) -> None:
    """Keep what the callback needs; `browser` is the random value of this browser's cookie."""
    sealed = json.dumps(
        {"token": link_token, "nonce": request.nonce, "verifier": request.code_verifier}
    )
    session.execute(delete(OidcSignIn).where(OidcSignIn.created_at < now - KEPT_FOR))
    session.add(
        OidcSignIn(
            state_hash=hash_secret(request.state),
            browser_hash=hash_secret(browser),
            invitation_id=invitation.id,
            sealed=encryption.encrypt(secret_key, sealed, purpose=PURPOSE),
            created_at=now,
        )
    )
    session.flush()


def claim(session: Session, *, state: str, browser: str, secret_key: str, now: datetime) -> Claimed:
    """The sign-in `state` belongs to, spent at once (single use under concurrency too)."""
    sign_in = session.scalar(select(OidcSignIn).where(OidcSignIn.state_hash == hash_secret(state)))
    if sign_in is None or not state:
        raise SignInRefused("this sign-in is not one this service started (its state is unknown)")
    if sign_in.used_at is not None:
        raise SignInRefused("this sign-in was already used")
    if sign_in.browser_hash != hash_secret(browser):
        raise SignInRefused("this sign-in was started in another browser")
    if sign_in.created_at < now - LIFETIME:
        raise SignInRefused("this sign-in took too long and has lapsed")
    spent = session.execute(
        update(OidcSignIn)
        .where(OidcSignIn.id == sign_in.id, OidcSignIn.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise SignInRefused("this sign-in was already used")
    kept = json.loads(encryption.decrypt(secret_key, sign_in.sealed, purpose=PURPOSE))
    return Claimed(
        invitation_id=sign_in.invitation_id,
        link_token=kept["token"],
        nonce=kept["nonce"],
        code_verifier=kept["verifier"],
    )


def verified_email(claims: IdTokenClaims) -> str:
    """The email the provider vouches for; an unverified or missing one is refused."""
    if not claims.email:
        raise SignInRefused("the provider did not say which email you signed in with")
    if not claims.email_verified:
        raise SignInRefused(
            f"the provider has not verified the email {claims.email}; verify it there first"
        )
    return claims.email
