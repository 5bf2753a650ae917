"""A row read again under its lock before it is deleted, so that two deletes of one object
at once compose as if one came after the other.

A delete that acts on the row it read unlocked loses a race on PostgreSQL: two transactions
both read it, both audit a deletion and both answer success (the later DELETE waits for the
earlier and then deletes nothing). Locked and read again first (SELECT ... FOR UPDATE), the
later waits for the earlier, then finds no row (READ COMMITTED: a locked row deleted meanwhile
is not returned) and answers not found (a 404), writing nothing, as it would serially.

Changes and rotations take it first too: a change at once with a delete finds the row gone (a
404, not the ORM's StaleDataError, a 500), and of two changes at once the later reads the
earlier's result, so both are kept and its audit event's before is the earlier's after.

SQLite runs one writer at a time (BEGIN IMMEDIATE, models.db): no FOR UPDATE, the same read.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from models.base import Base
from models.errors import NotFound

T = TypeVar("T", bound=Base)


def locked_or_404(session: Session, row: T, missing: str) -> T:
    """`row` read again by its primary key and locked until commit, before the caller changes
    it; NotFound(`missing`) when another transaction deleted it meanwhile."""
    identity = inspect(row).identity
    found = None if identity is None else locked_or_none(session, type(row), identity)
    if found is None:
        raise NotFound(missing)
    return found


def locked_or_none(session: Session, entity: type[T], ident: Any) -> T | None:
    """The row of `entity` with primary key `ident`, read again and locked until commit; None
    when it was deleted (a worker that settles what it sent finds its row gone)."""
    # Written first: the read replaces the row's loaded values and would drop the caller's
    # unwritten changes to it (an Okta secret set earlier in the same transaction).
    session.flush()
    return session.get(entity, ident, with_for_update=True, populate_existing=True)
