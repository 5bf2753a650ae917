"""Writes that take their locks at once or fail: how a test proves that nothing else holds
them (PostgreSQL: FOR UPDATE NOWAIT under a 1 ms lock timeout; SQLite: the database's write
lock with no busy timeout, "database is locked" at once if it is held)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence

from sqlalchemy import Engine, text


def write_without_waiting(
    engine: Engine,
    table: str,
    ids: Sequence[object] = (),
    *,
    key: str = "id",
    assignment: str | None = None,
) -> None:
    """Lock the rows of `table` whose `key` is in `ids`, and set `assignment` on them, at once
    or fail. On SQLite the database's write lock is taken however few the rows."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '1ms'"))
            found = f"FROM {table} WHERE {key} = ANY(:ids)"
            connection.execute(text(f"SELECT 1 {found} FOR UPDATE NOWAIT"), {"ids": list(ids)})
            if assignment:
                connection.execute(
                    text(f"UPDATE {table} SET {assignment} WHERE {key} = ANY(:ids)"),
                    {"ids": list(ids)},
                )
        return
    database = engine.url.database
    assert database is not None
    connection = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        if assignment and ids:
            marks = ",".join("?" * len(ids))
            values = [i.hex if isinstance(i, uuid.UUID) else i for i in ids]  # CHAR(32) there
            connection.execute(f"UPDATE {table} SET {assignment} WHERE {key} IN ({marks})", values)
        connection.execute("COMMIT")
    finally:
        connection.close()
