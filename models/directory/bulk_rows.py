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

from models.base import utcnow

BATCH = 2000


def table_of(entity: type[Any]) -> Table:
    return cast(Table, entity.__table__)


def fast_ids(count: int) -> list[str]:
    """Time-ordered ids in the layout of models.base.new_id, as 32 hex digits, in bulk: the
    milliseconds, the version 7, 12 random bits, the variant with 62 more. The random part
    is cut from one string of hex digits (20 drawn an id, 19 used), not formatted from two
    draws an id: 0.48 against 0.79 us an id, two ids a person."""
    head = f"{time.time_ns() // 1_000_000:012x}7"
    digits = random.randbytes(10 * count).hex()
    variant = _VARIANT_DIGIT
    return [
        f"{head}{digits[n : n + 3]}{variant[digits[n + 3]]}{digits[n + 4 : n + 19]}"
        for n in range(0, 20 * count, 20)
    ]


# A random hex digit as the one that starts the variant field: bits 10, then two random ones.
_VARIANT_DIGIT = {f"{d:x}": f"{0b1000 | (d & 0b11):x}" for d in range(16)}


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
    shares go through their column types once. The `stamped` columns are set to the time of
    writing: on PostgreSQL by their default (`now()`, migration 0035), which spares COPY
    parsing a timestamp per row and column; on SQLite by the time given here."""

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
        *,
        stamped: tuple[str, ...] = (),
    ) -> Rows:
        if dialect.name != "postgresql":
            now = utcnow()
            shared = {**shared, **{column: now for column in stamped}}
        names = [*columns, *shared]
        if dialect.name == "postgresql":
            quoted = ", ".join(f'"{name}"' for name in names)
            tail = "".join(f"\t{_copy_value(value)}" for value in shared.values()) + "\n"
            return cls(f'COPY "{table.name}" ({quoted}) FROM STDIN', _copy_lines(rows, tail))
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


def _copy_lines(rows: list[tuple[str, ...]], tail: str) -> str:
    """The rows as COPY text, each ended by `tail` (the shared values and the newline).

    Most batches need no escaping at all, which one scan of all their values tells: the
    rows are then joined without a Python call per row or value."""
    if not rows:
        return ""
    values = "".join(map("".join, rows))
    if "\\" in values or not values.isprintable():
        return "".join([_copy_line(row) + tail for row in rows])
    return tail.join(map("\t".join, rows)) + tail


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
