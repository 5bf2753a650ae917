"""Read models for the Users pages: the filtered table and the user detail page."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, String, func, literal_column, or_, select
from sqlalchemy.orm import Session

from models.access import Viewer, require_can_view_user, visible_users
from models.base import utcnow
from models.entities import Budget, Quota, Team, TeamMembership, UsageRecord, User, VirtualApiKey
from models.enums import OwnerType, Role, UserStatus
from models.queries import unseen

MAX_PAGE = 200
RECENT_USAGE_LIMIT = 50
USAGE_SUMMARY_DAYS = 30
# Between the email and the name in the search text: a control character, which no search
# term holds (a term that does is matched field by field, see matching_search).
SEARCH_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class UserFilter:
    role: Role | None = None
    status: UserStatus | None = None
    team_id: uuid.UUID | None = None
    search: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def list_users(
    session: Session,
    viewer: Viewer,
    filters: UserFilter,
    *,
    limit: int = 50,
    after: uuid.UUID | None = None,
) -> Page:
    """Users visible to the viewer, in creation order, keyset-paginated by id."""
    query = select(User).where(visible_users(viewer))
    if filters.role:
        query = query.where(User.role == filters.role)
    if filters.status:
        query = query.where(User.status == filters.status)
    if filters.team_id:
        query = query.join(TeamMembership, TeamMembership.user_id == User.id).where(
            TeamMembership.team_id == filters.team_id
        )
    if filters.search:
        query = query.where(matching_search(filters.search, session.get_bind().dialect.name))
    if after:
        query = query.where(User.id > after)
    limit = max(1, min(limit, MAX_PAGE))
    users = list(session.scalars(query.order_by(User.id).limit(limit + 1)))
    next_cursor = str(users[limit - 1].id) if len(users) > limit else None
    return Page(items=[user_profile(user) for user in users[:limit]], next_cursor=next_cursor)


def user_detail(session: Session, viewer: Viewer, user_id: uuid.UUID) -> dict[str, Any]:
    """Everything the user detail page shows: profile, teams, keys, usage, budgets, quotas."""
    user = require_can_view_user(session, viewer, user_id)
    return {
        **user_profile(user),
        "teams": _teams(session, user),
        "api_keys": [_key(key) for key in _owned_keys(session, user)],
        "usage": _usage(session, user),
        "budgets": [_budget(b) for b in _owned(session, Budget, user)],
        "quotas": [_quota(q) for q in _owned(session, Quota, user)],
    }


def user_profile(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "name": user.name,
        "email": user.email,
        "role": user.role.value,
        "status": user.status.value,
        "access_ends_at": user.access_ends_at.isoformat() if user.access_ends_at else None,
        "organisation_id": str(user.organisation_id),
        "created_at": user.created_at.isoformat(),
        "updated_at": user.updated_at.isoformat(),
    }


def _teams(session: Session, user: User) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Team.id, Team.name, TeamMembership.role)
        .join(TeamMembership, TeamMembership.team_id == Team.id)
        .where(TeamMembership.user_id == user.id)
        .order_by(Team.name_key)
    )
    return [{"id": str(tid), "name": name, "team_role": role.value} for tid, name, role in rows]


def _owned_keys(session: Session, user: User) -> list[VirtualApiKey]:
    query = (
        select(VirtualApiKey)
        .where(VirtualApiKey.owner_user_id == user.id)
        .order_by(VirtualApiKey.created_at)
    )
    return list(session.scalars(query))


def _owned(session: Session, entity: type[Budget] | type[Quota], user: User) -> list[Any]:
    query = select(entity).where(entity.owner_type == OwnerType.USER, entity.owner_id == user.id)
    return list(session.scalars(query))


def _usage(session: Session, user: User) -> dict[str, Any]:
    since = utcnow() - timedelta(days=USAGE_SUMMARY_DAYS)
    count, cost, tokens_in, tokens_out = session.execute(
        select(
            func.count(UsageRecord.id),
            func.coalesce(func.sum(UsageRecord.cost), 0),
            func.coalesce(func.sum(UsageRecord.input_tokens), 0),
            func.coalesce(func.sum(UsageRecord.output_tokens), 0),
        ).where(UsageRecord.user_id == user.id, UsageRecord.occurred_at >= since)
    ).one()
    recent = session.scalars(
        select(UsageRecord)
        .where(UsageRecord.user_id == user.id)
        .order_by(UsageRecord.occurred_at.desc())
        .limit(RECENT_USAGE_LIMIT)
    )
    return {
        "last_30_days": {
            "requests": count,
            "cost": str(Decimal(cost)),
            "input_tokens": int(tokens_in),
            "output_tokens": int(tokens_out),
        },
        "recent": [_usage_record(record) for record in recent],
    }


def _key(key: VirtualApiKey) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "name": key.name,
        "type": key.key_type.value,
        "masked_value": key.masked_value,
        "revoked": key.revoked,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "created_by_user_id": str(key.created_by_user_id) if key.created_by_user_id else None,
        **unseen.of_object(key),
    }


def _budget(budget: Budget) -> dict[str, Any]:
    return {
        "id": str(budget.id),
        "name": budget.name,
        "amount": str(budget.amount),
        "currency": budget.currency,
        "window": budget.window,
        "frozen_at": budget.frozen_at.isoformat() if budget.frozen_at else None,
        **unseen.of_object(budget),
    }


def _quota(quota: Quota) -> dict[str, Any]:
    return {
        "id": str(quota.id),
        "name": quota.name,
        "metric": quota.metric,
        "limit": quota.limit,
        "window": quota.window,
        **unseen.of_object(quota),
    }


def _usage_record(record: UsageRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "occurred_at": record.occurred_at.isoformat(),
        "api_key_id": str(record.api_key_id) if record.api_key_id else None,
        "model": record.model,
        "cost": str(record.cost),
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
    }


def matching_search(search: str, dialect: str) -> ColumnElement[bool]:
    """Users whose email or lower-cased name contains the text. Both fields are searched as
    one text joined by a separator no term holds (0037's one trigram index covers exactly
    that expression): a term without the separator is found in the joined text exactly
    where it is in one of the fields. A term that holds it takes the two fields apart."""
    term = search.strip().lower()
    pattern = "%" + _escape_like(term) + "%"
    if SEARCH_SEPARATOR in term:
        return or_(
            User.email_key.like(pattern, escape="\\"),
            func.lower(User.name).like(pattern, escape="\\"),
        )
    return search_text(dialect).like(pattern, escape="\\")


def search_text(dialect: str) -> ColumnElement[str]:
    """The users' search text as 0037's index `ix_users_search_trgm` spells it (the planner
    uses the index only for this very expression: no bound parameter in it)."""
    separator = literal_column("E'\\x1f'" if dialect == "postgresql" else "char(31)", String)
    return User.email_key.concat(separator).concat(func.lower(User.name))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
