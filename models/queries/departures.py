"""Upcoming departures: the people whose end date falls within the next days, with what they
hold that their revocation will touch (counted here; the blast-radius preview lists it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.access import Viewer, visible_users
from models.actions.access_end import ENDING
from models.entities import Budget, Quota, User, VirtualApiKey
from models.enums import KeyType, OwnerType

PAGE = 500  # people per page


@dataclass(frozen=True)
class Departure:
    user_id: uuid.UUID
    email: str
    name: str
    status: str
    access_ends_at: datetime
    source: str  # who set the date: admin, scim, ldap, events
    own_keys: int  # their own keys, revoked with them
    created_keys: int  # team and organisation keys they created, which need a new owner
    budgets_and_quotas: int

    def view(self) -> dict[str, Any]:
        return {
            "user_id": str(self.user_id),
            "email": self.email,
            "name": self.name,
            "status": self.status,
            "access_ends_at": self.access_ends_at.isoformat(),
            "source": self.source,
            "own_keys": self.own_keys,
            "created_keys": self.created_keys,
            "budgets_and_quotas": self.budgets_and_quotas,
        }


@dataclass(frozen=True)
class DeparturesPage:
    departures: list[Departure]
    total: int  # everyone this viewer may see leaving within the days
    offset: int


def upcoming_departures(
    session: Session,
    viewer: Viewer,
    *,
    now: datetime,
    days: int = 30,
    limit: int = PAGE,
    offset: int = 0,
) -> DeparturesPage:
    """A page of the people this viewer may see whose access ends within `days`, soonest
    first (a range of the end-date index), and how many there are in all."""
    leaving = _leaving(viewer, now, days)
    total = session.scalar(select(func.count()).select_from(User).where(*leaving)) or 0
    people = session.scalars(
        select(User)
        .where(*leaving)
        .order_by(User.access_ends_at, User.email_key, User.id)
        .offset(offset)
        .limit(max(1, min(limit, PAGE)))
    ).all()
    ids = [person.id for person in people]
    own, created, owned = _own_keys(session, ids), _created_keys(session, ids), _owned(session, ids)
    departures = [
        Departure(
            user_id=person.id,
            email=person.email,
            name=person.name,
            status=person.status.value,
            access_ends_at=person.access_ends_at,
            source=person.access_ends_source.value if person.access_ends_source else "",
            own_keys=own.get(person.id, 0),
            created_keys=created.get(person.id, 0),
            budgets_and_quotas=owned.get(person.id, 0),
        )
        for person in people
        if person.access_ends_at is not None
    ]
    return DeparturesPage(departures=departures, total=int(total), offset=offset)


def _leaving(viewer: Viewer, now: datetime, days: int) -> tuple[Any, ...]:
    return (
        visible_users(viewer),
        User.status.in_(ENDING),
        User.access_ends_at.is_not(None),
        User.access_ends_at > now,
        User.access_ends_at <= now + timedelta(days=days),
    )


def _own_keys(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    return _counts(
        session,
        select(VirtualApiKey.owner_user_id, func.count())
        .where(
            VirtualApiKey.owner_user_id.in_(ids),
            VirtualApiKey.key_type == KeyType.USER,
            VirtualApiKey.revoked.is_(False),
        )
        .group_by(VirtualApiKey.owner_user_id),
    )


def _created_keys(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    return _counts(
        session,
        select(VirtualApiKey.created_by_user_id, func.count())
        .where(
            VirtualApiKey.created_by_user_id.in_(ids),
            VirtualApiKey.key_type.in_((KeyType.TEAM, KeyType.ORGANISATION)),
            VirtualApiKey.revoked.is_(False),
        )
        .group_by(VirtualApiKey.created_by_user_id),
    )


def _owned(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    counts: dict[uuid.UUID, int] = {}
    for table in (Budget, Quota):
        query = (
            select(table.owner_id, func.count())
            .where(table.owner_type == OwnerType.USER, table.owner_id.in_(ids))
            .group_by(table.owner_id)
        )
        for owner_id, count in _counts(session, query).items():
            counts[owner_id] = counts.get(owner_id, 0) + count
    return counts


def _counts(session: Session, query: Any) -> dict[uuid.UUID, int]:
    return {owner: int(count) for owner, count in session.execute(query).all() if owner}
