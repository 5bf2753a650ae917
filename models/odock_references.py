"""Which ids Odock may name that need not be known here yet: one rule for the push, the change
events, the import and the reconcile (docs/odock.md).

A key id (a budget's or quota's APIKEY owner, a usage record's key) may name a key of the
organisation or one not known here yet: Odock may send a budget, or usage, before its key. It
may never name another organisation's key, which would carry the object into that
organisation's revocation findings. A usage record's person and team follow the same rule.
Each caller asks once for all the ids it holds (one object, a usage batch, a bulk chunk).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from models.entities import Team, User, VirtualApiKey


def keys_of_other_organisations(
    db: Session | Connection, organisation_id: uuid.UUID, key_ids: Iterable[uuid.UUID | None]
) -> set[uuid.UUID]:
    """Of these key ids, those the organisation may not name: another organisation's keys."""
    return held_elsewhere(db, VirtualApiKey, organisation_id, key_ids)


def held_elsewhere(
    db: Session | Connection,
    entity: type[VirtualApiKey] | type[User] | type[Team],
    organisation_id: uuid.UUID,
    ids: Iterable[uuid.UUID | None],
) -> set[uuid.UUID]:
    """Of these ids, those another organisation holds as `entity`: one query for all of them."""
    named = {object_id for object_id in ids if object_id is not None}
    if not named:
        return set()
    query = select(entity.id).where(entity.id.in_(named), entity.organisation_id != organisation_id)
    return set(db.scalars(query))
