"""API tokens: created with their secret shown once, stored only as a hash."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import audit
from models.actor import Actor
from models.base import utcnow
from models.entities import ApiToken, Organisation, User
from models.enums import TokenScope, UserStatus
from models.errors import Forbidden, InvalidInput
from models.secrets import hash_secret, new_secret, same_secret

TOKEN_PREFIX = {
    TokenScope.ADMIN: "odk_admin",
    TokenScope.SCIM: "odk_scim",
    TokenScope.ODOCK: "odk_odock",
}


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


def create_token(
    session: Session,
    *,
    organisation: Organisation,
    scope: TokenScope,
    actor: Actor,
    user: User | None = None,
    name: str = "",
) -> IssuedToken:
    if scope is TokenScope.ADMIN and user is None:
        raise InvalidInput("an admin token acts as a user; name the user", field="user")
    if user is not None and user.organisation_id != organisation.id:
        raise InvalidInput("the user belongs to another organisation", field="user")
    secret = new_secret(TOKEN_PREFIX[scope])
    token = ApiToken(
        organisation_id=organisation.id,
        scope=scope,
        user_id=user.id if user else None,
        name=name,
        token_hash=hash_secret(secret),
        prefix=secret[: len(TOKEN_PREFIX[scope]) + 5],
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        actor=actor,
        organisation_id=organisation.id,
        action="token.created",
        target_type="api_token",
        target_id=token.id,
        after={"scope": scope.value, "user_id": str(user.id) if user else None, "name": name},
    )
    return IssuedToken(token=token, secret=secret)


def authenticate(session: Session, *, secret: str, scope: TokenScope) -> ApiToken | None:
    """The live token for this secret and scope, or None; never says which part was wrong."""
    if not secret or len(secret) > 200:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_secret(secret)))
    if token is None or not same_secret(secret, token.token_hash):
        return None
    if token.scope is not scope or token.revoked_at is not None:
        return None
    return token


@dataclass(frozen=True)
class TokenGrant:
    """What a request needs from a verified token: whose it is and how to name the caller."""

    token_id: uuid.UUID
    organisation_id: uuid.UUID
    label: str


# (hash of the secret, scope) -> (verified at, grant): live tokens only, never the secret.
_GRANTS: dict[tuple[str, TokenScope], tuple[float, TokenGrant]] = {}
_clock = time.monotonic


def cached_grant(
    session: Session, *, secret: str, scope: TokenScope, ttl_seconds: float
) -> TokenGrant | None:
    """authenticate, remembered per process for `ttl_seconds`: a token revoked elsewhere is
    refused within that time (at once by the process that revoked it)."""
    key = (hash_secret(secret), scope)
    now = _clock()
    hit = _GRANTS.get(key)
    if hit is not None and now - hit[0] < ttl_seconds:
        return hit[1]
    token = authenticate(session, secret=secret, scope=scope)
    if token is None:
        _GRANTS.pop(key, None)
        return None
    grant = TokenGrant(token.id, token.organisation_id, token.name or token.prefix)
    if ttl_seconds > 0:
        if len(_GRANTS) > 10_000:
            _GRANTS.clear()
        _GRANTS[key] = (now, grant)
    return grant


def forget_grants(token: ApiToken) -> None:
    """Drop this process's cached grants of a token (other processes drop them within the TTL)."""
    for key in [k for k, (_, grant) in list(_GRANTS.items()) if grant.token_id == token.id]:
        _GRANTS.pop(key, None)


def acting_user(session: Session, token: ApiToken) -> User:
    """The user an admin token acts for; only ACTIVE users may act."""
    user = session.get(User, token.user_id) if token.user_id else None
    if user is None or user.status is not UserStatus.ACTIVE:
        raise Forbidden("the user behind this token is not active")
    return user


def revoke_token(session: Session, *, token: ApiToken, actor: Actor) -> None:
    token.revoked_at = utcnow()
    forget_grants(token)
    audit.record_change(
        session,
        actor=actor,
        subject=token,
        action="token.revoked",
        target_type="api_token",
    )
