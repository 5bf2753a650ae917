"""Writing a transaction's new objects with Core INSERTs instead of the unit of work's flush.

For a hot write whose new objects are plain rows (a SCIM create: the person, its link, its
SCIM record and emails, their audit events): the flush's unit of work (sorting, history,
per-object bookkeeping) cost about as much CPU as the statements it sends. The domain code
still builds the entities; this writes them one INSERT per table and keeps them in the
session as if loaded, so the answer is built from the values written, with no re-read.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Insert,
    Integer,
    String,
    Table,
    Uuid,
    insert,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.interfaces import MANYTOONE

from models.base import Base, UTCDateTime


@dataclass(frozen=True)
class Guard:
    """A condition a write holds to, checked in its own statement: SQL of a boolean (its
    parameters named `guard_...`, in the driver's style) and their values."""

    sql: str
    values: dict[str, Any]


class GuardRefused(Exception):
    """A guarded write wrote nothing: its condition was false, or it could not be written
    in one statement that checks it. Its new objects are left pending, unwritten."""


def insert_new(session: Session, kinds: tuple[type[Base], ...], guard: Guard | None = None) -> bool:
    """Write every new object of the session with Core INSERTs, in the tables' dependency
    order, and keep them as persistent objects. Only when every new object is one of `kinds`
    and nothing else is changed or deleted (the flush would order those against the new
    rows); otherwise nothing is done (False) and the usual flush writes them.
    `guard`: every row is written only if the guard's condition holds, in the same
    statement (PostgreSQL); GuardRefused when it does not, or when that cannot be done."""
    pending = list(session.new)
    if not pending or session.dirty or session.deleted:
        return _unguarded(guard)
    states = [instance_state(entity) for entity in pending]
    if any(type(s.obj()) not in kinds or not _plain(s.mapper) for s in states):
        return _unguarded(guard)
    rows: dict[Table, list[dict[str, Any]]] = {}
    for entity in pending:
        take_parent_keys(entity)
    for entity, state in zip(pending, states, strict=True):
        mapper = state.mapper
        rows.setdefault(mapper.local_table, []).append(row_of(entity, mapper))  # type: ignore[arg-type]
    ordered = tuple(sorted(rows, key=table_order().__getitem__))
    connection = session.connection()
    together = _together(ordered, connection.dialect, guard.sql if guard else None)
    if together is not None:
        values = {table.name: json.dumps(rows[table], default=_json_value) for table in ordered}
        written = connection.exec_driver_sql(
            together, {**values, **(guard.values if guard else {})}
        )
        if guard is not None and not written.rowcount:
            raise GuardRefused  # nothing written: every INSERT holds to the guard
    else:
        _unguarded(guard)
        for table in ordered:
            _insert_rows(connection, table, rows[table])
    # What the flush does once its statements ran: the objects become persistent, their
    # values the committed state (a rollback of the transaction expunges them again).
    # Expunging them and adding them back as detached, public API, cost twice the cascades.
    session._register_persistent(set(states))
    return True


def _unguarded(guard: Guard | None) -> bool:
    """No write of insert_new's own: the flush's (False), unless a guard was asked for."""
    if guard is not None:
        raise GuardRefused
    return False


def take_parent_keys(entity: Any) -> None:
    """What the flush would sync: a foreign key from the parent object set on a relationship
    (an email's scim_user_id from its SCIM user)."""
    values = entity.__dict__
    for relationship, pairs in _parent_keys(instance_state(entity).mapper):
        parent = values.get(relationship)
        if parent is None:
            continue
        for key, parent_key in pairs:
            # Into the object's dict, as the flush's sync does: no attribute event (the
            # object is made persistent, these values its committed state, after the write).
            values[key] = getattr(parent, parent_key)


@functools.cache
def _parent_keys(mapper: Mapper[Any]) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """Each many-to-one relationship of the mapper that writes its keys, with the pairs of
    its attribute holding a foreign key and the parent's attribute holding the value."""
    found = []
    for relationship in mapper.relationships:
        if relationship.direction is not MANYTOONE or relationship.viewonly:
            continue
        parent: Mapper[Any] = relationship.mapper
        pairs = tuple(
            (mapper.get_property_by_column(local).key, parent.get_property_by_column(remote).key)
            for local, remote in relationship.local_remote_pairs or ()
        )
        found.append((relationship.key, pairs))
    return tuple(found)


_MISSING = object()


def row_of(entity: Any, mapper: Mapper[Any], skip: Column[Any] | None = None) -> dict[str, Any]:
    """The entity's row (but the `skip` column, a key the database generates); a column it
    leaves unset takes its Python default (None without one), which is also put in the
    entity's dict, as the flush does (no attribute event: the caller makes the entity
    persistent, with these values its committed state, once the row is written)."""
    row: dict[str, Any] = {}
    values = entity.__dict__
    for column, key in _attributes(mapper):
        if column is skip:
            continue
        value = values.get(key, _MISSING)
        if value is _MISSING:
            value = values[key] = column_default(column)
        row[column.key] = value
    return row


@functools.cache
def _attributes(mapper: Mapper[Any]) -> tuple[tuple[Any, str], ...]:
    """Each column of the mapper's table and the attribute holding it, found once."""
    columns = mapper.local_table.columns
    return tuple((column, mapper.get_property_by_column(column).key) for column in columns)


@functools.cache
def _plain(mapper: Mapper[Any]) -> bool:
    """Whether every column of the mapper's rows is known before the INSERT (no default the
    database gives, no version counter)."""
    table = mapper.local_table
    if mapper.version_id_col is not None or mapper.inherits is not None:
        return False
    if table.autoincrement_column is not None:  # type: ignore[attr-defined]
        return False
    return all(
        column.server_default is None
        and not (column.default is not None and column.default.is_sequence)
        for column in table.columns
    )


def column_default(column: Any) -> Any:
    return default_value(column.default)


def default_value(default: Any) -> Any:
    """The value of a column's Python default or onupdate (None without one)."""
    if default is None:
        return None
    if default.is_callable:
        return default.arg(None)  # SQLAlchemy wraps a no-argument callable to take a context
    return default.arg


def _insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if len(rows) == 1:
        connection.execute(_insert(table), rows[0])
    else:
        # With RETURNING, SQLAlchemy sends the rows as one multi-row INSERT (one statement,
        # prepared like the others) instead of the driver's executemany.
        connection.execute(_insert(table).returning(*table.primary_key), rows).all()


@functools.cache
def _together(tables: tuple[Table, ...], dialect: Dialect, guard: str | None) -> str | None:
    """PostgreSQL: one statement writing every table's rows, each table's rows one JSON
    array parameter (the tables' ordered), each INSERT but the last a data-modifying CTE of
    it. The foreign keys are checked at the statement's end, so a child comes with its
    parent. One round trip and a few parameters instead of an INSERT per table (each cost
    SQLAlchemy's and psycopg's per-statement work, ~0.1 ms). None elsewhere, or when a
    column's type is not one this knows how to carry in JSON. `guard`: a boolean SQL
    every INSERT is held to (all the rows or none; the last INSERT's count says which)."""
    if dialect.name != "postgresql":
        return None
    held = "" if guard is None else " WHERE (SELECT ok FROM guard)"
    inserts = []
    for table in tables:
        columns = [_from_json(column, dialect) for column in table.columns]
        if None in columns:
            return None
        # Only the metadata's own names (quoted) go into the text; every value is bound.
        names = ", ".join(dialect.identifier_preparer.quote(c.name) for c in table.columns)
        inserts.append(
            f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({names}) "  # noqa: S608
            f"SELECT {', '.join(columns)} "  # type: ignore[arg-type]
            f"FROM json_array_elements(CAST(%({table.name})s AS JSON)) AS e{held}"
        )
    *before, last = inserts
    ctes = [f"write_{n} AS ({statement})" for n, statement in enumerate(before)]
    if guard is not None:
        ctes.insert(0, f"guard AS (SELECT {guard} AS ok)")
    return f"WITH {', '.join(ctes)} {last}" if ctes else last


def _from_json(column: Column[Any], dialect: Dialect) -> str | None:
    """The SQL taking the column's value from a row's JSON object `e`: JSON as it is (a
    None stored as JSON null, as SQLAlchemy's JSON type does), strings as text assigned to
    the column (so a value too long is refused, never cut), the rest cast from text."""
    key = _json_key(column.key)
    kind = column.type
    if isinstance(kind, JSON):
        return f"e->{key}"
    if isinstance(kind, String):  # Enum too: stored as its value
        return f"e->>{key}"
    if isinstance(kind, UTCDateTime | Uuid | Boolean | Integer):
        return f"CAST(e->>{key} AS {kind.compile(dialect=dialect)})"
    return None


def _json_key(key: str) -> str:
    return "'" + key.replace("'", "''") + "'"


def _json_value(value: Any) -> Any:
    """What json.dumps cannot write itself: ids as text, moments in UTC (a naive one is
    refused, as UTCDateTime does)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"{type(value).__name__} is not written as JSON here")


@functools.cache
def table_order() -> dict[Table, int]:
    """Each table's place in the foreign keys' dependency order, sorted once (sorting the
    metadata cost 0.3 ms a create)."""
    return {table: place for place, table in enumerate(Base.metadata.sorted_tables)}


@functools.cache
def _insert(table: Table) -> Insert:
    """A table's INSERT of every column, built once (its shape is fixed: prepared where the
    transaction asks for it)."""
    return insert(table)
