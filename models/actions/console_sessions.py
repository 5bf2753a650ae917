"""Web console sessions: an admin or manager signs in once (with the organisation's OpenID
Connect provider, or, where it has none, an admin-API token) and gets a session that expires,
ends at sign-out, and is refused as soon as the person is no longer ACTIVE or no longer an
admin or manager.

A session is an API token of scope `console` (stored hashed, listed and revocable like any
token), so sign-in and sign-out are in the audit trail as `token.created` / `token.revoked`,
and each sign-in as `console.signed_in` (refusals: `console.sign_in_refused`, recorded by the
caller once the attempt is rolled back; models/actions/sign_in_audit.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.access import Viewer
from models.actions import oidc_providers, provider_accounts, sign_in_audit, tokens
from models.actions.sign_in_audit import SignInMethod, SignInRefused
from models.actor import Actor
from models.base import utcnow
from models.entities import ApiToken, Organisation, User
from models.entities.user import email_key, same_email
from models.enums import Role, SignInPlace, Source, TokenScope
from models.errors import DomainError, Forbidden

CONSOLE_ROLES = frozenset({Role.ORG_ADMIN, Role.SUPER_ADMIN, Role.MANAGER})

__all__ = [
    "ConsoleSession",
    "SignInRefused",
    "console_actor",
    "session_viewer",
    "sign_out",
]


@dataclass(frozen=True)
class ConsoleSession:
    secret: str
    token_id: uuid.UUID
    viewer: Viewer


def console_actor(viewer: Viewer) -> Actor:
    """The console acts as the signed-in person, as the admin API does."""
    return Actor(Source.ADMIN, viewer.name, viewer.user_id)


def sign_in_with_token(session: Session, *, secret: str, lifetime: timedelta) -> ConsoleSession:
    """Exchange a live admin-API token for a console session of the person it acts as, in an
    organisation that has no OpenID Connect provider (where it has one, people sign in there,
    so that the provider's own checks and offboarding apply to the console too)."""
    token = tokens.authenticate(session, secret=secret.strip(), scope=TokenScope.ADMIN)
    if token is None:
        raise SignInRefused(
            "that is not a live admin token; check it and try again", outcome="bad_token"
        )
    user = _console_user(session, token.user_id)
    provider = oidc_providers.provider_for(session, token.organisation_id)
    if provider is not None:
        raise SignInRefused(
            f"this organisation signs in to the console with {provider.display_name}: "
            "use Sign in with OIDC",
            outcome="oidc_required",
            **_who(user),
        )
    return _start(
        session,
        user=user,
        lifetime=lifetime,
        method=SignInMethod.ADMIN_TOKEN,
        how=f"admin token {token.prefix}",
    )


def sign_in_verified_email(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    email: str,
    lifetime: timedelta,
    method: SignInMethod = SignInMethod.OIDC,
    account: provider_accounts.ProviderAccount | None = None,
) -> ConsoleSession:
    """The seam for sign-in providers (OpenID Connect): given an email the provider has
    verified for this organisation, start a console session for that person; `account` is
    who signed in at the provider, which must be the account they signed in with before."""
    found = session.execute(
        select(User.id, User.email).where(
            User.organisation_id == organisation_id, User.email_key == email_key(email)
        )
    ).first()
    if found is None or not same_email(email, found.email):
        raise SignInRefused(
            f"{email} is not a person of this organisation",
            outcome="not_a_person",
            organisation_id=organisation_id,
            email=email,
        )
    user = _console_user(session, found.id)
    if account is not None:
        provider_accounts.check(
            session, user=user, account=account, actor=console_actor(Viewer.for_user(user))
        )
    return _start(session, user=user, lifetime=lifetime, method=method, how=str(method))


def session_viewer(session: Session, *, secret: str) -> tuple[Viewer, uuid.UUID] | None:
    """Who a console session acts for, and its id; None when it is unknown, expired, ended,
    or its person may no longer use the console."""
    token = tokens.authenticate(session, secret=secret, scope=TokenScope.CONSOLE)
    if token is None:
        return None
    try:
        user = _console_user(session, token.user_id)
    except DomainError:
        return None
    return Viewer.for_user(user), token.id


def sign_out(session: Session, *, token_id: uuid.UUID, viewer: Viewer) -> None:
    token = session.get(ApiToken, token_id)
    if token is not None and token.scope is TokenScope.CONSOLE:
        tokens.revoke_token(session, token=token, actor=console_actor(viewer))


def _console_user(session: Session, user_id: uuid.UUID | None) -> User:
    try:
        user = tokens.acting_user(session, user_id)
    except Forbidden:
        person = session.get(User, user_id) if user_id else None
        raise SignInRefused(
            "this person is not active, so they cannot sign in",
            outcome="not_active",
            **(_who(person) if person else {}),
        ) from None
    if user.role not in CONSOLE_ROLES:
        raise SignInRefused(
            "the console is for Organisation Admins and managers",
            outcome="not_console_role",
            **_who(user),
        )
    return user


def _who(user: User) -> dict[str, Any]:
    """What a refusal records of a known person."""
    return {"organisation_id": user.organisation_id, "email": user.email, "user_id": user.id}


def _start(
    session: Session, *, user: User, lifetime: timedelta, method: SignInMethod, how: str
) -> ConsoleSession:
    viewer = Viewer.for_user(user)
    issued = tokens.create_token(
        session,
        organisation=session.get_one(Organisation, user.organisation_id),
        scope=TokenScope.CONSOLE,
        user=user,
        name=f"console session ({how})"[:200],
        expires_at=utcnow() + lifetime,
        actor=console_actor(viewer),
    )
    sign_in_audit.signed_in(
        session,
        place=SignInPlace.CONSOLE,
        method=method,
        organisation_id=user.organisation_id,
        email=user.email,
        user_id=user.id,
    )
    return ConsoleSession(secret=issued.secret, token_id=issued.token.id, viewer=viewer)
