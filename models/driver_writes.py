"""Statements of a write's transaction run straight through psycopg, compiled once.

For the fixed-shape statements of a hot write (a SCIM deactivation: its lock, its look at
what the person holds, its UPDATEs and INSERTs): SQLAlchemy's execution layer (the execution
context, parameter processing, the result and its description) cost more CPU than
PostgreSQL's answer to a prepared statement. Only in a transaction that asked for prepared
statements (models.db.prepare_transaction, PostgreSQL) and while nothing watches the
engine's statements (tracing, a test counting them); elsewhere SQLAlchemy runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, exc
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

from models.db import PREPARED

_ONLY_WHEN_ASKED = 1 << 30  # as models.db: psycopg prepares only what it is asked to


@dataclass(frozen=True)
class _Compiled:
    """A statement compiled once for psycopg: its SQL, SQLAlchemy's conversions of its
    parameters, and of its returned columns by position."""

    compiled: Any
    sql: str
    binds: dict[str, Callable[[Any], Any]]
    columns: tuple[tuple[int, Callable[[Any], Any]], ...]

    def parameters(self, given: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = self.compiled.construct_params(given)
        for name, convert in self.binds.items():
            values[name] = convert(values[name])
        return values

    def row(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        if not self.columns:
            return row
        values = list(row)
        for position, convert in self.columns:
            if values[position] is not None:
                values[position] = convert(values[position])
        return tuple(values)


# Statement object id -> (the statement, kept so the id stays its own; its compiled form).
_COMPILED: dict[int, tuple[ClauseElement, _Compiled | None]] = {}


def execute(
    session: Session, statement: ClauseElement, parameters: Mapping[str, Any]
) -> list[tuple[Any, ...]] | None:
    """The rows (those RETURNING gives, for a write) of a kept statement run in the
    session's transaction through psycopg, as SQLAlchemy would convert them; None where
    SQLAlchemy must run it (see the module)."""
    connection = session.connection()
    if not _direct(connection):
        return None
    compiled = _compiled(statement, connection)
    if compiled is None:
        return None
    values = compiled.parameters(parameters)
    driver = connection.connection.driver_connection
    try:
        rows = _run(driver, compiled.sql, values)
    except connection.dialect.loaded_dbapi.Error as error:
        raise exc.DBAPIError.instance(
            compiled.sql,
            values,
            error,
            connection.dialect.loaded_dbapi.Error,
            hide_parameters=True,
            dialect=connection.dialect,
            connection_invalidated=connection.dialect.is_disconnect(error, driver, None),
        ) from error
    return [compiled.row(row) for row in rows]


def _direct(connection: Connection) -> bool:
    if not connection.get_execution_options().get(PREPARED):
        return False  # the transaction did not ask (SQLite, prepared statements off)
    dispatch = connection.dispatch
    return not (dispatch.before_cursor_execute or dispatch.after_cursor_execute)


def _compiled(statement: ClauseElement, connection: Connection) -> _Compiled | None:
    found = _COMPILED.get(id(statement))
    if found is not None and found[0] is statement:
        return found[1]
    compiled = _compile(statement, connection)
    if len(_COMPILED) > 2048:
        _COMPILED.clear()
    _COMPILED[id(statement)] = (statement, compiled)
    return compiled


def _compile(statement: ClauseElement, connection: Connection) -> _Compiled | None:
    dialect = connection.dialect
    compiled: Any = statement.compile(dialect=dialect)
    if compiled.post_compile_params or compiled.literal_execute_params:
        return None  # expanded per execution (IN lists): SQLAlchemy's to run
    binds: dict[str, Callable[[Any], Any]] = {}
    for bind, name in compiled.bind_names.items():
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            binds[name] = convert
    columns = []
    for position, column in enumerate(compiled._result_columns):
        convert = column[3].dialect_impl(dialect).result_processor(dialect, None)
        if convert is not None:
            columns.append((position, convert))
    return _Compiled(compiled, compiled.string, binds, tuple(columns))


def _run(connection: Any, sql: str, values: dict[str, Any]) -> list[tuple[Any, ...]]:
    connection.prepare_threshold = _ONLY_WHEN_ASKED
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, values, prepare=True)
            rows: list[tuple[Any, ...]] = cursor.fetchall() if cursor.description else []
            return rows
    finally:
        connection.prepare_threshold = None
