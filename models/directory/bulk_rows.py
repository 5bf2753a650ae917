"""Rows written in bulk: COPY text on PostgreSQL, one driver-level executemany on SQLite.

Shared by the people an import creates (people_import) and the team memberships a plan adds
(memberships): a first import writes some hundred thousand of each.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

BATCH = 2000


def table_of(entity: type[Any]) -> Table:
    return cast(Table, entity.__table__)


def fast_ids(count: int) -> list[str]:
    """Time-ordered ids in the layout of models.base.new_id, as 32 hex digits, in bulk."""
    millis = time.time_ns() // 1_000_000
    head = (millis << 80) | (0x7 << 76) | (0b10 << 62)
    bits = random.getrandbits
    return [f"{head | (bits(12) << 64) | bits(62):032x}" for _ in range(count)]


def dashed(hex_id: str) -> str:
    """The usual text form of a UUID given as 32 hex digits."""
    h = hex_id
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class Rows:
    """Rows of one table in the form its database takes them fastest: COPY text for
    PostgreSQL, executemany parameters for SQLite. SQLAlchemy's executemany would convert
    each row's parameters one by one; here the rows' own values are already text as both
    databases store them (UUIDs as 32 hex digits, JSON serialised), and the values every row
    shares go through their column types once."""

    statement: str
    payload: str | list[tuple[Any, ...]]

    @classmethod
    def of(
        cls,
        dialect: Dialect,
        table: Table,
        columns: tuple[str, ...],
        rows: list[tuple[str, ...]],
        shared: dict[str, Any],
    ) -> Rows:
        names = [*columns, *shared]
        if dialect.name == "postgresql":
            quoted = ", ".join(f'"{name}"' for name in names)
            tail = "".join(f"\t{_copy_value(value)}" for value in shared.values()) + "\n"
            data = "".join([_copy_line(row) + tail for row in rows])
            return cls(f'COPY "{table.name}" ({quoted}) FROM STDIN', data)
        common: list[Any] = []
        for name, value in shared.items():
            process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            common.append(process(value) if process is not None and value is not None else value)
        # The parameters in the order the compiled statement wants them.
        compiled = insert(table).compile(dialect=dialect, column_keys=names)
        reorder = itemgetter(*[names.index(name) for name in compiled.positiontup or []])
        tail_values = tuple(common)
        return cls(compiled.string, [reorder(row + tail_values) for row in rows])

    def write(self, session: Session) -> None:
        connection = session.connection()
        if isinstance(self.payload, str):
            driver = connection.connection.driver_connection
            assert driver is not None
            with driver.cursor() as cursor, cursor.copy(self.statement) as copy:
                copy.write(self.payload)
        else:
            connection.exec_driver_sql(self.statement, self.payload)


# COPY's text format: a backslash starts an escape, and tab, newline and carriage return
# separate values and rows.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    if "\\" in value or not value.isprintable():
        return value.translate(_COPY_ESCAPES)
    return value


def _copy_line(row: tuple[str, ...]) -> str:
    """A row's values joined by tabs; most rows need no escaping, which one scan tells."""
    joined = "".join(row)
    if "\\" in joined or not joined.isprintable():
        return "\t".join([_copy_text(value) for value in row])
    return "\t".join(row)


def _copy_value(value: Any) -> str:
    """A shared value in COPY's text format (once per batch, so clarity beats speed)."""
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return _copy_text(json.dumps(value))
    return _copy_text(str(value))
