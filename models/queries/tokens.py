"""Read models of API tokens: what an admin may see of them (never the secret or its hash)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.entities import ApiToken, User

TOKEN_STATUSES = ("active", "expired", "revoked")


def token_status(token: ApiToken, now: datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


def token_view(token: ApiToken, now: datetime, user_email: str | None = None) -> dict[str, Any]:
    return {
        "id": str(token.id),
        "scope": token.scope.value,
        "name": token.name,
        "prefix": token.prefix,
        "status": token_status(token, now),
        "user_id": str(token.user_id) if token.user_id else None,
        "user_email": user_email,
        "created_at": token.created_at.isoformat(),
        "expires_at": _iso(token.expires_at),
        "last_used_at": _iso(token.last_used_at),
        "revoked_at": _iso(token.revoked_at),
    }


def list_tokens(
    session: Session, organisation_id: uuid.UUID, *, now: datetime, status: str | None = None
) -> list[dict[str, Any]]:
    """The organisation's tokens, newest first, with the email of the user each acts as."""
    rows = session.execute(
        select(ApiToken, User.email)
        .outerjoin(User, User.id == ApiToken.user_id)
        .where(ApiToken.organisation_id == organisation_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id)
    ).all()
    views = [token_view(token, now, email) for token, email in rows]
    return [view for view in views if status is None or view["status"] == status]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
