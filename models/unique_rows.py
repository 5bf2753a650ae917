"""Rows with a unique key that the first writer creates, written so that two writers at once
compose as if one came after the other, never with a duplicate-key error (a 500).

"Read; if none, insert" loses a race on PostgreSQL: two transactions both find no row, both
insert, and the later INSERT waits for the earlier transaction and then fails on the key
(IntegrityError). The ways out, by kind of row:

- `insert_or_find`, a row kept once per key (an organisation's OpenID Connect provider, its
  hook configuration, its Odock bridge row, a policy): INSERT ... ON CONFLICT DO NOTHING, then
  the row read by its key. The later writer waits for the earlier, inserts nothing, and reads
  the earlier's row (READ COMMITTED: a new statement sees what committed before it began),
  locked if asked, and goes on with it as a second writer would.
- `claimed`, a new object whose natural key must be free (a team's, a connector's name, a
  person's email, an organisation's slug): written in a savepoint; when another transaction
  took the key meanwhile, the savepoint is rolled back and the caller's Conflict raised (a
  409), nothing written and no audit event. `written` is the same savepoint for rows a second writer
  should read again and complete rather than refuse (a notification's deliveries).

SQLite runs one writer at a time (BEGIN IMMEDIATE): no race there, the same statements.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.base import Base
from models.db import conflict_insert

T = TypeVar("T", bound=Base)

# A row found gone right after a conflict (deleted between the INSERT and the read): try again.
ATTEMPTS = 3


def insert_or_find(
    session: Session,
    entity: type[T],
    key: dict[str, Any],
    values: dict[str, Any] | None = None,
    *,
    lock: bool = False,
) -> tuple[T, bool]:
    """The row of `entity` whose unique key is `key` (attribute: value, every column of its
    primary key or of one unique constraint), and whether this call created it: read, else
    inserted with `values` (ON CONFLICT DO NOTHING), else the row a concurrent writer
    inserted meanwhile. `lock`: the row is locked until commit (PostgreSQL), whoever wrote
    it, so that what the caller reads from it stays true while it changes it."""
    for _ in range(ATTEMPTS):
        found = _find(session, entity, key, lock)
        if found is not None:
            return found, False
        statement = (
            conflict_insert(session.get_bind().dialect.name)(entity)
            .values(**key, **(values or {}))
            .on_conflict_do_nothing(index_elements=[getattr(entity, name) for name in key])
            .returning(entity)
        )
        created = session.scalars(
            statement, execution_options={"populate_existing": True}
        ).one_or_none()
        if created is not None:
            return created, True
        found = _find(session, entity, key, lock)
        if found is not None:
            return found, False
    raise RuntimeError(f"{entity.__name__} {key}: neither inserted nor found")


def _find(session: Session, entity: type[T], key: dict[str, Any], lock: bool) -> T | None:
    query = select(entity).filter_by(**key).execution_options(populate_existing=True)
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def written(session: Session, objects: Sequence[Base]) -> bool:
    """Write the new objects in a savepoint; False, none of them written, when a unique key
    one of them takes was taken meanwhile by another transaction (then read again what it
    wrote and write what is left)."""
    try:
        with session.begin_nested():
            session.add_all(objects)
    except IntegrityError:
        return False
    return True


@contextmanager
def claimed(session: Session, taken: Callable[[], Exception]) -> Iterator[None]:
    """Write what the block adds in a savepoint, flushed at its end; if a unique key it
    takes was taken meanwhile by another transaction, roll the savepoint back and raise
    `taken()` (a Conflict, in the caller's words) instead of the IntegrityError."""
    try:
        with session.begin_nested():
            yield
            session.flush()
    except IntegrityError:
        raise taken() from None
