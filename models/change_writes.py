"""Writing a few pending changes with Core statements instead of the unit of work's flush.

For a hot write that changes a handful of rows (a SCIM deactivation: the revocation and the
person's status, then the audit events, the outbox message and the SCIM row's updated_at):
the flush's unit of work (sorting, history, per-object bookkeeping) cost more CPU than the
statements it sends. `flush_changes` writes what the flush would, in the same order (table
by table in the foreign keys' order, a table's UPDATEs before its INSERTs), and leaves the
objects as the flush would (persistent, with nothing pending); it takes the usual flush
whenever the changes are anything but plain rows: a deletion, a relationship changed, a new
object of a kind not named, a savepoint, or more than a few objects (a batch).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.base import NO_VALUE, PASSIVE_NO_INITIALIZE
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.state import InstanceState

from models import driver_writes, row_writes
from models.base import Base

# More than this many objects is a batch: the flush's executemany serves it better.
MOST_OBJECTS = 8


def flush_changes(session: Session, kinds: tuple[type[Base], ...]) -> None:
    """Write the session's pending changes: with Core statements when they are plain rows
    (new objects of `kinds`, column changes of loaded ones), else with the flush."""
    if not _write_plain(session, kinds):
        session.flush()


def _write_plain(session: Session, kinds: tuple[type[Base], ...]) -> bool:
    if session.deleted or session.in_nested_transaction():
        return False
    new = list(session.new)
    if any(type(entity) not in kinds or not _insertable(_mapper(entity)) for entity in new):
        return False
    changed = [inspect(entity) for entity in session.dirty]
    if len(new) + len(changed) > MOST_OBJECTS:
        return False
    updates = [_update(state) for state in changed]
    if any(update is None for update in updates):
        return False
    writes: dict[Table, tuple[list[tuple[InstanceState[Any], dict[str, Any]]], list[Any]]] = {}
    for state, values in (u for u in updates if u is not None and u[1]):
        writes.setdefault(_mapper(state.obj()).local_table, ([], []))[0].append((state, values))  # type: ignore[arg-type]
    for entity in new:
        row_writes.take_parent_keys(entity)
        writes.setdefault(_mapper(entity).local_table, ([], []))[1].append(entity)  # type: ignore[arg-type]
    connection = session.connection()
    ordered = [(t, *writes[t]) for t in sorted(writes, key=row_writes.table_order().__getitem__)]
    if not _write_together(session, connection, ordered):
        for table, table_updates, table_inserts in ordered:
            for state, values in table_updates:
                _run_update(session, connection, table, state, values)
            _insert_all(session, connection, table, table_inserts)
    _settle(session, new, changed)
    return True


def _mapper(entity: Any) -> Mapper[Any]:
    mapper: Mapper[Any] = inspect(entity).mapper
    return mapper


@functools.cache
def _insertable(mapper: Mapper[Any]) -> bool:
    """Whether a new row of the mapper is known before its INSERT but for an autoincrement
    key (given back by RETURNING): no default the database gives otherwise, no version
    counter, one table."""
    table = mapper.local_table
    if mapper.version_id_col is not None or mapper.inherits is not None:
        return False
    return all(
        (column.server_default is None or column is table.autoincrement_column)  # type: ignore[attr-defined]
        and column.server_onupdate is None
        and (column.onupdate is None or not column.onupdate.is_clause_element)
        for column in table.columns
    )


@functools.cache
def _set_on_update(mapper: Mapper[Any]) -> tuple[tuple[Any, str], ...]:
    """The columns an UPDATE of the mapper's rows sets when the change does not (their
    `onupdate`: `updated_at`), and the attributes holding them."""
    columns = mapper.local_table.columns
    return tuple((c, mapper.get_property_by_column(c).key) for c in columns if c.onupdate)


def _update(state: InstanceState[Any]) -> tuple[InstanceState[Any], dict[str, Any]] | None:
    """The columns an object's changes set (column key -> value), or None when the flush must
    write them (a relationship changed, a key changed, a mapper the INSERTs could not write)."""
    mapper = state.mapper
    if not _insertable(mapper) or state.key is None:
        return None
    values: dict[str, Any] = {}
    for key, original in state.committed_state.items():
        prop = mapper.attrs[key]
        current = state.dict.get(key, NO_VALUE)
        if not hasattr(prop, "columns"):  # a relationship: the flush syncs its rows
            history = state.manager[key].impl.get_history(state, state.dict, PASSIVE_NO_INITIALIZE)
            if history.has_changes():
                return None
            continue
        if current is NO_VALUE:  # deleted from the object: the flush knows what that means
            return None
        if original is not NO_VALUE and current == original:
            continue
        column = prop.columns[0]
        if column.primary_key:
            return None
        values[column.key] = current
    if values:
        # As the flush does: the value goes into the object too.
        for column, key in _set_on_update(mapper):
            if column.key not in values:
                values[column.key] = state.dict[key] = row_writes.default_value(column.onupdate)
    return state, values


def _run_update(
    session: Session,
    connection: Connection,
    table: Table,
    state: InstanceState[Any],
    values: dict[str, Any],
) -> None:
    statement, parameters = _update_of(table, frozenset(values)), _update_values(state, values)
    matched = driver_writes.execute(session, statement, parameters)
    if matched is None:
        matched = list(connection.execute(statement, parameters))
    _check_matched(table, len(matched))


def _check_matched(table: Table, matched: int) -> None:
    if matched != 1:
        raise StaleDataError(f"UPDATE of {table.name} matched {matched} rows, not 1")


def _update_values(
    state: InstanceState[Any], values: dict[str, Any], prefix: str = ""
) -> dict[str, Any]:
    """The parameters of `_update_of(..., prefix)` for the object's row and these values."""
    keys = zip(state.mapper.local_table.primary_key, state.key[1], strict=True)  # type: ignore[index]
    return {
        **{f"{prefix}{name}": value for name, value in values.items()},
        **{f"{prefix}key_{column.key}": value for column, value in keys},
    }


@functools.cache
def _update_of(table: Table, columns: frozenset[str], prefix: str = "") -> Update:
    """An UPDATE of these columns by key, built once (a fixed shape: prepared where the
    transaction asks for it); it returns the key, so a direct run counts its rows. Its
    parameters are named after the columns, after `prefix`."""
    where = [c == bindparam(f"{prefix}key_{c.key}") for c in table.primary_key]
    values: dict[str, Any] = {name: bindparam(f"{prefix}{name}") for name in sorted(columns)}
    return table.update().where(*where).values(values).returning(*table.primary_key)


def _insert_all(
    session: Session, connection: Connection, table: Table, entities: list[Any]
) -> None:
    if not entities:
        return
    mapper = _mapper(entities[0])
    generated: Column[Any] | None = table.autoincrement_column
    rows = [row_writes.row_of(entity, mapper, skip=generated) for entity in entities]
    if generated is None or len(rows) == 1:
        # One statement of the rows, its shape kept per number of rows: run directly.
        statement = _values_insert(table, len(rows), generated)
        values = _insert_values(rows)
        returned = driver_writes.execute(session, statement, values)
        if returned is None:
            result = connection.execute(statement, values)
            returned = list(result) if result.returns_rows else []
    else:
        # With RETURNING, SQLAlchemy sends the rows as one multi-row INSERT, the keys given
        # back in the rows' order.
        returned = list(connection.execute(_returning(table, generated), rows))
    if generated is not None:
        prop = mapper.get_property_by_column(generated).key
        for entity, (value,) in zip(entities, returned, strict=True):
            setattr(entity, prop, value)


def _insert_values(rows: list[dict[str, Any]], prefix: str = "") -> dict[str, Any]:
    """The parameters of `_values_insert(..., prefix)` for these rows."""
    return {
        f"{prefix}{key}__{i}": value for i, row in enumerate(rows) for key, value in row.items()
    }


@functools.lru_cache(maxsize=64)
def _values_insert(
    table: Table, count: int, generated: Column[Any] | None, prefix: str = ""
) -> Insert:
    """An INSERT of `count` rows whose values are bound as <prefix><column>__<row>, built
    once per table and count; returning the generated key, if any."""
    columns = [c for c in table.columns if c is not generated]
    rows: list[dict[str, Any]] = [
        {c.key: bindparam(f"{prefix}{c.key}__{i}", type_=c.type) for c in columns}
        for i in range(count)
    ]
    statement = insert(table).values(rows)
    return statement.returning(generated) if generated is not None else statement


# One write of the statement `_together` makes: an UPDATE of these columns of one row, or
# an INSERT of this many rows.
Piece = tuple[Table, frozenset[str] | int]
TableWrites = tuple[Table, list[tuple[InstanceState[Any], dict[str, Any]]], list[Any]]


def _write_together(session: Session, connection: Connection, writes: list[TableWrites]) -> bool:
    """PostgreSQL: the writes in one statement (see `_together`); False when there is one
    write alone, or one cannot go in it (rows with generated keys: only an INSERT of its own
    gives the keys back in the rows' order)."""
    if connection.dialect.name != "postgresql" or not _fit_together(writes):
        return False
    pieces: list[Piece] = []
    values: dict[str, Any] = {}
    # piece -> the new object its generated key goes to, and the attribute holding it
    keyed: dict[int, tuple[Any, str]] = {}
    for table, updates, inserts in writes:
        for state, changed in updates:
            values.update(_update_values(state, changed, f"w{len(pieces)}_"))
            pieces.append((table, frozenset(changed)))
        if inserts:
            mapper, generated = _mapper(inserts[0]), table.autoincrement_column
            rows = [row_writes.row_of(entity, mapper, skip=generated) for entity in inserts]
            values.update(_insert_values(rows, f"w{len(pieces)}_"))
            if generated is not None:
                keyed[len(pieces)] = (inserts[0], mapper.get_property_by_column(generated).key)
            pieces.append((table, len(rows)))
    statement = _together(tuple(pieces))
    answers = driver_writes.execute(session, statement, values)
    if answers is None:
        answers = list(connection.execute(statement, values))
    for n, ((table, written), answer) in enumerate(zip(pieces, answers[0], strict=True)):
        if n in keyed:
            setattr(*keyed[n], answer)
        elif isinstance(written, frozenset):
            _check_matched(table, answer)
    return True


def _fit_together(writes: list[TableWrites]) -> bool:
    pieces = sum(len(updates) + bool(inserts) for _, updates, inserts in writes)
    return pieces > 1 and all(
        len(inserts) < 2 or table.autoincrement_column is None for table, _, inserts in writes
    )


@functools.lru_cache(maxsize=64)
def _together(pieces: tuple[Piece, ...]) -> Select[Any]:
    """One statement of these writes, each a data-modifying CTE of it (PostgreSQL), built
    once per shape; its one row answers each write in turn: the rows an UPDATE matched, an
    INSERT's generated key (or its rows' count). The CTEs run on one snapshot, the foreign
    keys checked at the statement's end, so the tables' order does not matter in it; a
    write per statement cost SQLAlchemy's and psycopg's per-statement work, and
    PostgreSQL's, each time."""
    answers = []
    for n, (table, written) in enumerate(pieces):
        prefix = f"w{n}_"
        if isinstance(written, frozenset):
            cte = _update_of(table, written, prefix).cte(f"w{n}")
            answers.append(select(func.count()).select_from(cte).scalar_subquery())
            continue
        generated = table.autoincrement_column
        statement = _values_insert(table, written, generated, prefix)
        if generated is not None:
            cte = statement.cte(f"w{n}")
            answers.append(select(cte.c[generated.key]).scalar_subquery())
        else:
            cte = statement.returning(*table.primary_key).cte(f"w{n}")
            answers.append(select(func.count()).select_from(cte).scalar_subquery())
    return select(*answers)


def _settle(session: Session, new: list[Any], changed: Iterable[InstanceState[Any]]) -> None:
    """Leave the objects as a flush would: the new ones persistent, the changed ones with
    nothing pending. This is the flush's own last step (its unit of work's
    finalize_flush_changes), so a rollback afterwards expunges the new ones as it would after
    a flush. Expunging each new object and adding it back made it persistent too, but walked
    its relationships' cascades twice (52 against 22 µs for three new rows) and left it in the
    session, as a row that is not there, after a rollback."""
    session._register_persistent({*(inspect(entity) for entity in new), *changed})


@functools.cache
def _returning(table: Table, key: Column[Any]) -> Insert:
    return insert(table).returning(key, sort_by_parameter_order=True)
