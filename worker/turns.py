"""One holder at a time across processes, for work that must not run twice at once.

Taken without waiting: whoever does not get it leaves the work to the holder instead of
holding a worker slot while it waits. PostgreSQL: a session-level advisory lock. SQLite: a
lock on a file beside the database (its one writer at a time serialises transactions, not a
drain's run of many). Both go when their holder's process dies.

On PostgreSQL the lock also goes with its connection (a failover, an idle-session timeout, a
terminated backend), unnoticed by a holder that works on other connections. Work that must
never run beside another holder's runs its transactions on `Turn.connection`, the lock's own:
once the lock is gone, so is the connection, and the work fails instead of going on.
"""

from __future__ import annotations

import fcntl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text


def key_of(name: uuid.UUID) -> int:
    """A 64-bit advisory-lock key for a row's id."""
    return int.from_bytes(name.bytes[:8], "big", signed=True)


@dataclass(frozen=True)
class Turn:
    """Whether this process holds the turn; true when it does."""

    mine: bool
    # The PostgreSQL connection holding the lock (None on SQLite): the holder's transactions
    # run on it to be sure of still holding the turn when they commit.
    connection: Connection | None = None

    def __bool__(self) -> bool:
        return self.mine


@contextmanager
def turn(engine: Engine, key: int) -> Iterator[Turn]:
    """Yields whether this process holds the turn for `key` (released on exit)."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, key) as held:
            yield held
    else:
        with _file_lock(engine.url.database, key) as mine:
            yield Turn(mine)


@contextmanager
def _advisory_lock(engine: Engine, key: int) -> Iterator[Turn]:
    with engine.connect() as connection:
        mine = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        connection.commit()
        try:
            yield Turn(mine, connection if mine else None)
        finally:
            if mine:
                connection.rollback()  # whatever the holder left open on it
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()


@contextmanager
def _file_lock(database: str | None, key: int) -> Iterator[bool]:
    if not database or database == ":memory:":
        yield True  # a database of one process: nobody to take turns with
        return
    with open(f"{database}.turn-{key & 0xFFFFFFFFFFFFFFFF:016x}.lock", "a") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
