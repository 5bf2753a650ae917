"""Whether Odock's complete listings have lately lacked a key, budget or quota (the reconcile's
`unseen_since`, models/entities/odock.py), as the admin API, the console and the review
findings show it: the object is kept, and an admin sees that Odock did not list it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.entities import Budget, Quota, VirtualApiKey

# A review finding's subject_type for each kind of object the listings mark.
LISTED: dict[str, type[VirtualApiKey] | type[Budget] | type[Quota]] = {
    "api_key": VirtualApiKey,
    "budget": Budget,
    "quota": Quota,
}
CHUNK = 1000  # ids a query binds


def unseen_view(since: datetime | None, listings: int, *, prefix: str = "") -> dict[str, Any]:
    """`unseen_since`: since when Odock's complete listings have lacked the object (null while
    it lists it); `unseen_listings`: how many in a row (at ODOCK_FORGET_AFTER_LISTINGS it is
    forgotten)."""
    return {
        f"{prefix}unseen_since": since.isoformat() if since else None,
        f"{prefix}unseen_listings": listings if since else 0,
    }


def of_object(row: VirtualApiKey | Budget | Quota) -> dict[str, Any]:
    return unseen_view(row.unseen_since, row.unseen_listings)


def of_subjects(
    session: Session, subjects: Iterable[tuple[str, uuid.UUID]]
) -> dict[tuple[str, uuid.UUID], tuple[datetime | None, int]]:
    """The unseen marks of these (subject_type, id), one query per kind; objects Odock lists
    (or of other kinds) are left out."""
    wanted: dict[str, set[uuid.UUID]] = {}
    for subject_type, subject_id in subjects:
        if subject_type in LISTED:
            wanted.setdefault(subject_type, set()).add(subject_id)
    found: dict[tuple[str, uuid.UUID], tuple[datetime | None, int]] = {}
    for subject_type, ids in wanted.items():
        entity = LISTED[subject_type]
        ordered = sorted(ids)
        for start in range(0, len(ordered), CHUNK):
            rows = session.execute(
                select(entity.id, entity.unseen_since, entity.unseen_listings).where(
                    entity.id.in_(ordered[start : start + CHUNK]), entity.unseen_since.is_not(None)
                )
            )
            for subject_id, since, listings in rows:
                found[(subject_type, subject_id)] = (since, listings)
    return found
