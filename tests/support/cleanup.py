"""Emptying the database between tests, so no test sees what an earlier one left."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, TextClause, text

import models.entities  # noqa: F401 (every table on the metadata)
from models.base import Base

TABLES = list(reversed(Base.metadata.sorted_tables))  # children before their parents

# Every table's DELETE in one string: PostgreSQL runs statements sent together (no
# parameters) in one round trip, and a DELETE from an empty table costs less than a probe.
DELETE_EVERY_TABLE = "; ".join(f'DELETE FROM "{t.name}"' for t in TABLES)


def empty_tables(engine: Engine) -> None:
    """Delete every row, in one transaction.

    DELETE, not TRUNCATE: on PostgreSQL a TRUNCATE of a table others reference must take them
    all (CASCADE) and gives each a new file, 20 to 40 times slower here than deleting the few
    rows a test leaves. The price is that deleted rows keep their pages: a test that counts
    pages (pg_relation_size) truncates its table itself.

    The outbox ids are not restarted: a message is published as the task `outbox-<id>`, and a
    task of an earlier test still in the worker would share its id with a new message.
    """
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(DELETE_EVERY_TABLE)
        else:
            delete_tables_with_rows(connection)


def delete_tables_with_rows(connection: Connection) -> None:
    """SQLite (in-process, one statement per call): one probe, then the tables it names."""
    holding = set(connection.scalars(tables_with_rows()))
    for table in TABLES:
        if table.name in holding:
            connection.execute(table.delete())


def tables_with_rows() -> TextClause:
    """One statement naming the tables that hold at least one row."""
    probes = (f"SELECT '{t.name}' WHERE EXISTS (SELECT 1 FROM \"{t.name}\")" for t in TABLES)
    return text(" UNION ALL ".join(probes))
