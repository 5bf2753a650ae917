"""One holder at a time across processes, for work that must not run twice at once.

A PostgreSQL session-level advisory lock, taken without waiting: whoever does not get it
leaves the work to the holder instead of holding a worker slot while it waits. SQLite lets
one writer at a time anyway, so there every caller gets its turn.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text


def key_of(name: uuid.UUID) -> int:
    """A 64-bit advisory-lock key for a row's id."""
    return int.from_bytes(name.bytes[:8], "big", signed=True)


@contextmanager
def turn(engine: Engine, key: int) -> Iterator[bool]:
    """Yields whether this process holds the turn for `key` (released on exit)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as connection:
        mine = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        connection.commit()
        try:
            yield mine
        finally:
            if mine:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
