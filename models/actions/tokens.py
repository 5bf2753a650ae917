"""API tokens: created with their secret shown once, stored only as a hash, refused once
revoked or expired; their last use is written at most once a minute."""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from models import audit, key_scope
from models.actor import Actor
from models.base import utcnow
from models.entities import ApiToken, Organisation, User
from models.enums import TokenScope, UserStatus
from models.errors import Conflict, Forbidden, InvalidInput, NotFound
from models.secrets import hash_secret, new_secret, same_secret

MAX_LIFETIME = timedelta(days=3650)
LAST_USE_RESOLUTION = timedelta(minutes=1)
LIFETIME_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
LIFETIME = re.compile(r"(\d{1,6})([hdw])")


def token_prefix(scope: TokenScope) -> str:
    """`odk_<scope>`: one shape per scope that secret scanners can match; new scopes get
    theirs without a change here. Tokens are looked up by hash, so any older shape still
    authenticates."""
    return f"odk_{scope.value}"


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


def parse_lifetime(text: str) -> timedelta:
    """`12h`, `90d` or `2w` as a duration; anything else is a clear InvalidInput."""
    match = LIFETIME.fullmatch(text.strip().lower())
    if match is None or int(match[1]) == 0:
        raise InvalidInput(
            f"expires-in {text!r} is not a lifetime such as 12h, 90d or 2w", field="expires_in"
        )
    return int(match[1]) * LIFETIME_UNITS[match[2]]


def expiry_from(
    *, now: datetime, expires_at: datetime | None, expires_in: timedelta | None
) -> datetime | None:
    """One way to say when a token expires: a moment or a lifetime from now, not both."""
    if expires_at is not None and expires_in is not None:
        raise InvalidInput("give expires_at or a lifetime, not both", field="expires_at")
    return now + expires_in if expires_in is not None else expires_at


def checked_expiry(expires_at: datetime | None, *, now: datetime) -> datetime | None:
    """The expiry, if it is a real moment in the future within MAX_LIFETIME."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone (for example 2027-01-31T00:00:00Z)")
    if expires_at <= now:
        raise InvalidInput("expires_at must be in the future", field="expires_at")
    if expires_at > now + MAX_LIFETIME:
        raise InvalidInput(f"a token may live at most {MAX_LIFETIME.days} days", field="expires_at")
    return expires_at


def create_token(
    session: Session,
    *,
    organisation: Organisation,
    scope: TokenScope,
    actor: Actor,
    user: User | None = None,
    name: str = "",
    expires_at: datetime | None = None,
) -> IssuedToken:
    if scope is TokenScope.ADMIN and user is None:
        raise InvalidInput("an admin token acts as a user; name the user", field="user")
    if user is not None and user.organisation_id != organisation.id:
        raise InvalidInput("the user belongs to another organisation", field="user")
    expires_at = checked_expiry(expires_at, now=utcnow())
    secret = new_secret(token_prefix(scope))
    token = ApiToken(
        organisation_id=organisation.id,
        scope=scope,
        user_id=user.id if user else None,
        name=name,
        token_hash=hash_secret(secret),
        prefix=secret[: len(token_prefix(scope)) + 5],
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    audit.record_change(
        session,
        actor=actor,
        subject=token,
        action="token.created",
        target_type="api_token",
        after={
            "scope": scope.value,
            "user_id": str(user.id) if user else None,
            "name": name,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return IssuedToken(token=token, secret=secret)


def is_live(token: ApiToken, now: datetime) -> bool:
    return token.revoked_at is None and (token.expires_at is None or token.expires_at > now)


def authenticate(session: Session, *, secret: str, scope: TokenScope) -> ApiToken | None:
    """The live token for this secret and scope, or None; never says which part was wrong."""
    if not secret or len(secret) > 200:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_secret(secret)))
    if token is None or not same_secret(secret, token.token_hash):
        return None
    if token.scope is not scope or not is_live(token, utcnow()):
        return None
    return token


@dataclass(frozen=True)
class TokenGrant:
    """What a request needs from a verified token: whose it is and how to name the caller."""

    token_id: uuid.UUID
    organisation_id: uuid.UUID
    label: str
    user_id: uuid.UUID | None = None
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


# (hash of the secret, scope) -> (verified at, grant): live tokens only, never the secret.
_GRANTS: dict[tuple[str, TokenScope], tuple[float, TokenGrant]] = {}
# Tokens this process has revoked (or begun to): never cached again. A request that read the
# token just before the revocation committed would otherwise cache it after forget_grants
# ran, and this process would go on taking a revoked token for the whole TTL.
_REVOKED_HERE: set[uuid.UUID] = set()
_GRANTS_LOCK = threading.Lock()
_clock = time.monotonic


def cached_grant(
    session: Session, *, secret: str, scope: TokenScope, ttl_seconds: float
) -> TokenGrant | None:
    """authenticate, remembered per process for `ttl_seconds`: a token revoked elsewhere is
    refused within that time (at once by the process that revoked it); an expired one at
    once everywhere."""
    key = (hash_secret(secret), scope)
    now = _clock()
    hit = _GRANTS.get(key)
    if hit is not None and now - hit[0] < ttl_seconds and not hit[1].expired(utcnow()):
        return hit[1]
    token = authenticate(session, secret=secret, scope=scope)
    if token is None:
        _GRANTS.pop(key, None)
        return None
    _remember_use(token.id, token.last_used_at)
    grant = TokenGrant(
        token.id, token.organisation_id, token.name or token.prefix, token.user_id, token.expires_at
    )
    if ttl_seconds > 0:
        with _GRANTS_LOCK:
            if token.id not in _REVOKED_HERE:
                if len(_GRANTS) > 10_000:
                    _GRANTS.clear()
                _GRANTS[key] = (now, grant)
    return grant


def forget_grants(token: ApiToken) -> None:
    """Drop this process's cached grants of a token and cache it no more (other processes drop
    them within the TTL)."""
    with _GRANTS_LOCK:
        if len(_REVOKED_HERE) > 10_000:
            _REVOKED_HERE.clear()
        _REVOKED_HERE.add(token.id)
        for key in [k for k, (_, grant) in list(_GRANTS.items()) if grant.token_id == token.id]:
            _GRANTS.pop(key, None)


# token id -> the last use this process knows was written; bounds the writes per process.
_USE_WRITTEN: dict[uuid.UUID, datetime] = {}


def _remember_use(token_id: uuid.UUID, used_at: datetime | None) -> None:
    known = _USE_WRITTEN.get(token_id)
    if used_at is not None and (known is None or used_at > known):
        if len(_USE_WRITTEN) > 10_000:
            _USE_WRITTEN.clear()
        _USE_WRITTEN[token_id] = used_at


def record_use(session: Session, *, grant: TokenGrant, now: datetime) -> bool:
    """Set the token's last use, unless it was set within LAST_USE_RESOLUTION; True when an
    UPDATE was sent (the caller commits it). Busy SCIM traffic thus writes once a minute."""
    known = _USE_WRITTEN.get(grant.token_id)
    # A use written "in the future" (another host's clock runs ahead) counts as recent:
    # this host's UPDATE would match nothing, and sending it on every request would cost.
    if known is not None and now - known < LAST_USE_RESOLUTION:
        return False
    _USE_WRITTEN.pop(grant.token_id, None)
    _remember_use(grant.token_id, now)
    # The condition keeps several processes from each writing the row in the same minute.
    session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == grant.token_id,
            or_(
                ApiToken.last_used_at.is_(None),
                ApiToken.last_used_at <= now - LAST_USE_RESOLUTION,
            ),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    return True


def acting_user(session: Session, user_id: uuid.UUID | None) -> User:
    """The user an admin token acts for; only ACTIVE users may act."""
    user = session.get(User, user_id) if user_id else None
    if user is None or user.status is not UserStatus.ACTIVE:
        raise Forbidden("the user behind this token is not active")
    return user


def get_token(session: Session, organisation_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or token.organisation_id != organisation_id:
        raise NotFound(f"no token {token_id}")
    return token


def revoke_token(session: Session, *, token: ApiToken, actor: Actor) -> bool:
    """Revoke a token (at once in this process); False if it already was. A conditional
    update, so of two revocations at once only one is made and audited."""
    if token.revoked_at is not None:
        return False
    stamp = utcnow()
    won = session.execute(
        update(ApiToken)
        .where(ApiToken.id == token.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=stamp)
        .execution_options(synchronize_session=False)
    )
    if not won.rowcount:  # type: ignore[attr-defined]
        session.refresh(token, ["revoked_at"])
        return False
    set_committed_value(token, "revoked_at", stamp)
    forget_grants(token)
    audit.record_change(
        session,
        actor=actor,
        subject=token,
        action="token.revoked",
        target_type="api_token",
        before={"revoked_at": None},
        after={"revoked_at": stamp.isoformat(), "scope": token.scope.value},
    )
    return True


def revoke_person_tokens(
    session: Session, *, user_id: uuid.UUID, revocation_id: uuid.UUID, actor: Actor
) -> list[uuid.UUID]:
    """Revoke the live admin-API tokens that act as this person, stamped with their
    revocation (a reactivation does not bring them back); the ids revoked, in order."""
    held = session.scalars(
        select(ApiToken)
        .where(key_scope.admin_tokens_of(user_id), ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.created_at)
    ).all()
    revoked = []
    for token in held:
        if revoke_token(session, token=token, actor=actor):
            token.revoked_by_revocation_id = revocation_id
            revoked.append(token.id)
    return revoked


def revoke_token_by_id(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    token_id: uuid.UUID,
    actor: Actor,
    caller_token_id: uuid.UUID | None = None,
    revoke_own: bool = False,
) -> ApiToken:
    """Revoke one of the organisation's tokens; the caller's own only when it says so, so
    an admin does not lock themselves out by a slip."""
    token = get_token(session, organisation_id, token_id)
    if token.id == caller_token_id and not revoke_own and token.revoked_at is None:
        raise Conflict(
            "this is the token making the request; pass revoke_own=true to revoke it anyway"
        )
    revoke_token(session, token=token, actor=actor)
    return token


def note_expired(session: Session, *, now: datetime, actor: Actor, limit: int = 500) -> int:
    """Write `token.expired` to the audit trail once for each token whose expiry has passed."""
    due = session.scalars(
        select(ApiToken)
        .where(
            ApiToken.expires_at <= now,
            ApiToken.expiry_noted_at.is_(None),
            ApiToken.revoked_at.is_(None),
        )
        .order_by(ApiToken.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for token in due:
        token.expiry_noted_at = now
        forget_grants(token)
        audit.record_change(
            session,
            actor=actor,
            subject=token,
            action="token.expired",
            target_type="api_token",
            after={"expires_at": token.expires_at.isoformat() if token.expires_at else None},
        )
    return len(due)
