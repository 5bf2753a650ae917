"""Upcoming departures: the people whose end date falls within the next days, with what they
hold that their revocation will touch (counted here; the blast-radius preview lists it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import key_scope
from models.access import Viewer, visible_users
from models.actions.access_end import ENDING
from models.entities import Budget, Quota, User
from models.enums import KeyType

PAGE = 500  # people per page
CREATED = (KeyType.TEAM, KeyType.ORGANISATION)  # keys counted against who created them


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
    keys, owned = _held_keys(session, ids), _owned(session, viewer.organisation_id, ids)
    departures = [
        Departure(
            user_id=person.id,
            email=person.email,
            name=person.name,
            status=person.status.value,
            access_ends_at=person.access_ends_at,
            source=person.access_ends_source.value if person.access_ends_source else "",
            own_keys=keys.get((person.id, KeyType.USER), 0),
            created_keys=sum(keys.get((person.id, kind), 0) for kind in CREATED),
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


def _held_keys(session: Session, ids: list[uuid.UUID]) -> dict[tuple[uuid.UUID, KeyType], int]:
    """Their active keys by type, as the revocation's scope holds them (models.key_scope)."""
    if not ids:
        return {}
    rows = session.execute(key_scope.held_keys_of(ids))
    return {(holder_id, KeyType(key_type)): count for holder_id, key_type, count in rows}


def _owned(session: Session, organisation_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[Any, int]:
    """Their budgets and quotas, and those of their keys, as the revocation's scope holds
    them (models.key_scope)."""
    counts: dict[Any, int] = {}
    for table in (Budget, Quota):
        for query in key_scope.owned_of(table, organisation_id, ids) if ids else []:
            for owner_id, count in session.execute(query):
                counts[owner_id] = counts.get(owner_id, 0) + count
    return counts
