"""Committed rows built once and copied back for each test, under new identities.

Building test data through the domain operations costs an action and its audit events per
row: some 80 statements for the admin API's world. Copying the committed result back is one
INSERT per table. Each copy is made new, so nothing of one test reaches the next through it:

- every id of a copied row gets a new UUID, wherever the copy holds it (a foreign key, an
  audit event's target, a JSON value);
- every time moves by the time since the rows were captured, so the copy reads as if built
  just before the test, in the same order and at the same intervals as the original;
- the caller renames further values that a process may key a cache on (secrets, slugs).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table

import models.entities  # noqa: F401 (every table on the metadata)
from models.base import Base, utcnow
from tests.support.cleanup import tables_with_rows

Renames = Mapping[Any, Any]


@dataclass(frozen=True)
class Rows:
    """Every committed row, by table (parents before their children), and when they were read."""

    tables: list[tuple[Table, list[dict[str, Any]]]]
    captured_at: datetime

    def ids(self) -> list[uuid.UUID]:
        return [
            row["id"]
            for _, rows in self.tables
            for row in rows
            if isinstance(row.get("id"), uuid.UUID)
        ]


def capture(engine: Engine) -> Rows:
    """The database's rows (the tables holding any, in one probe, then those only)."""
    with engine.connect() as connection:
        holding = set(connection.scalars(tables_with_rows()))
        tables = [
            (table, [dict(row._mapping) for row in connection.execute(table.select())])
            for table in Base.metadata.sorted_tables
            if table.name in holding
        ]
    return Rows(tables, utcnow())


def fresh_ids(rows: Rows) -> dict[Any, Any]:
    """A new UUID for every row id, each both as a UUID and as its text (audit targets)."""
    renames: dict[Any, Any] = {}
    for old in rows.ids():
        new = uuid.uuid4()
        renames[old] = new
        renames[str(old)] = str(new)
    return renames


def copy_back(engine: Engine, rows: Rows, renames: Renames) -> None:
    """Insert a copy of `rows`, renamed and moved to now, in one transaction."""
    shift = utcnow() - rows.captured_at
    with engine.begin() as connection:
        for table, table_rows in rows.tables:
            copies = [{k: moved(v, renames, shift) for k, v in row.items()} for row in table_rows]
            connection.execute(table.insert(), copies)


def moved(value: Any, renames: Renames, shift: timedelta) -> Any:
    if isinstance(value, datetime):
        return value + shift
    if isinstance(value, dict):
        return {key: moved(item, renames, shift) for key, item in value.items()}
    if isinstance(value, list):
        return [moved(item, renames, shift) for item in value]
    if isinstance(value, (uuid.UUID, str)) and value in renames:
        return renames[value]
    return value
