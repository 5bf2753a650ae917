"""Web console sessions: an admin or manager signs in once (an admin-API token, or an email a
sign-in provider has verified) and gets a session that expires, ends at sign-out, and is
refused as soon as the person is no longer ACTIVE or no longer an admin or manager.

A session is an API token of scope `console` (stored hashed, listed and revocable like any
token), so sign-in and sign-out are in the audit trail as `token.created` / `token.revoked`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.access import Viewer
from models.actions import tokens
from models.actor import Actor
from models.base import utcnow
from models.entities import ApiToken, Organisation, User
from models.entities.user import email_key
from models.enums import Role, Source, TokenScope
from models.errors import DomainError, Forbidden

CONSOLE_ROLES = frozenset({Role.ORG_ADMIN, Role.SUPER_ADMIN, Role.MANAGER})


class SignInRefused(DomainError):
    """Said the same way whatever was wrong, so a guess learns nothing."""

    code = "sign_in_refused"


@dataclass(frozen=True)
class ConsoleSession:
    secret: str
    token_id: uuid.UUID
    viewer: Viewer


def console_actor(viewer: Viewer) -> Actor:
    """The console acts as the signed-in person, as the admin API does."""
    return Actor(Source.ADMIN, viewer.name, viewer.user_id)


def sign_in_with_token(session: Session, *, secret: str, lifetime: timedelta) -> ConsoleSession:
    """Exchange a live admin-API token for a console session of the person it acts as."""
    token = tokens.authenticate(session, secret=secret.strip(), scope=TokenScope.ADMIN)
    if token is None:
        raise SignInRefused("that is not a live admin token; check it and try again")
    user = _console_user(session, token.user_id)
    return _start(session, user=user, lifetime=lifetime, how=f"admin token {token.prefix}")


def sign_in_verified_email(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    email: str,
    lifetime: timedelta,
    method: str = "oidc",
) -> ConsoleSession:
    """The seam for sign-in providers (OpenID Connect): given an email the provider has
    verified for this organisation, start a console session for that person."""
    user_id = session.scalar(
        select(User.id).where(
            User.organisation_id == organisation_id, User.email_key == email_key(email)
        )
    )
    if user_id is None:
        raise SignInRefused(f"{email} is not a person of this organisation")
    user = _console_user(session, user_id)
    return _start(session, user=user, lifetime=lifetime, how=method)


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
        raise SignInRefused("this person is not active, so they cannot sign in") from None
    if user.role not in CONSOLE_ROLES:
        raise SignInRefused("the console is for Organisation Admins and managers")
    return user


def _start(session: Session, *, user: User, lifetime: timedelta, how: str) -> ConsoleSession:
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
    return ConsoleSession(secret=issued.secret, token_id=issued.token.id, viewer=viewer)
