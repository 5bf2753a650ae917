"""Writing a transaction's new objects with Core INSERTs instead of the unit of work's flush.

For a hot write whose new objects are plain rows (a SCIM create: the person, its link, its
SCIM record and emails, their audit events): the flush's unit of work (sorting, history,
per-object bookkeeping) cost about as much CPU as the statements it sends. The domain code
still builds the entities; this writes them one INSERT per table and keeps them in the
session as if loaded, so the answer is built from the values written, with no re-read.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Connection, Insert, Table, insert, inspect
from sqlalchemy.orm import Mapper, Session, make_transient_to_detached
from sqlalchemy.orm.interfaces import MANYTOONE

from models.base import Base


def insert_new(session: Session, kinds: tuple[type[Base], ...]) -> bool:
    """Write every new object of the session with Core INSERTs, in the tables' dependency
    order, and keep them as persistent objects. Only when every new object is one of `kinds`
    and nothing else is changed or deleted (the flush would order those against the new
    rows); otherwise nothing is done (False) and the usual flush writes them."""
    pending = list(session.new)
    if not pending or session.dirty or session.deleted:
        return False
    if any(type(entity) not in kinds or not _plain(inspect(entity).mapper) for entity in pending):
        return False
    rows: dict[Table, list[dict[str, Any]]] = {}
    for entity in pending:
        _take_parent_keys(entity)
    for entity in pending:
        mapper: Mapper[Any] = inspect(entity).mapper
        rows.setdefault(mapper.local_table, []).append(_row(entity, mapper))  # type: ignore[arg-type]
    connection = session.connection()
    for table in sorted(rows, key=_table_order().__getitem__):
        _insert_rows(connection, table, rows[table])
    for entity in pending:
        if entity in session:  # expunging a parent expunges its cascaded children
            session.expunge(entity)
    for entity in pending:
        make_transient_to_detached(entity)
    session.add_all(pending)
    return True


def _take_parent_keys(entity: Any) -> None:
    """What the flush would sync: a foreign key from the parent object set on a relationship
    (an email's scim_user_id from its SCIM user)."""
    mapper: Mapper[Any] = inspect(entity).mapper
    for relationship in mapper.relationships:
        if relationship.direction is not MANYTOONE or relationship.viewonly:
            continue
        parent = entity.__dict__.get(relationship.key)
        if parent is None:
            continue
        parent_mapper: Mapper[Any] = inspect(parent).mapper
        for local, remote in relationship.local_remote_pairs or ():
            key = mapper.get_property_by_column(local).key
            setattr(entity, key, getattr(parent, parent_mapper.get_property_by_column(remote).key))


_MISSING = object()


def _row(entity: Any, mapper: Mapper[Any]) -> dict[str, Any]:
    """The entity's row; a column it leaves unset takes its Python default (None without
    one), which is also set on the entity, as the flush does."""
    row: dict[str, Any] = {}
    for column in mapper.local_table.columns:
        key = mapper.get_property_by_column(column).key
        value = entity.__dict__.get(key, _MISSING)
        if value is _MISSING:
            value = _default(column)
            setattr(entity, key, value)
        row[column.key] = value
    return row


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


def _default(column: Any) -> Any:
    default = column.default
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
def _table_order() -> dict[Table, int]:
    """Each table's place in the foreign keys' dependency order, sorted once (sorting the
    metadata cost 0.3 ms a create)."""
    return {table: place for place, table in enumerate(Base.metadata.sorted_tables)}


@functools.cache
def _insert(table: Table) -> Insert:
    """A table's INSERT of every column, built once (its shape is fixed: prepared where the
    transaction asks for it)."""
    return insert(table)
