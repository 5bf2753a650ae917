"""Statements of a write's transaction run straight through psycopg, compiled once.

For the fixed-shape statements of a hot write (a SCIM deactivation: its lock, its look at
what the person holds, its UPDATEs and INSERTs): SQLAlchemy's execution layer (the execution
context, parameter processing, the result and its description) cost more CPU than
PostgreSQL's answer to a prepared statement. Only in a transaction that asked for prepared
statements (models.db.prepare_transaction, PostgreSQL) and while nothing watches the
engine's statements (tracing, a test counting them); elsewhere SQLAlchemy runs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, exc
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, Executable

from models.db import PREPARED, connection_lost, driver_statement, run_prepared


def execute(
    session: Session, statement: ClauseElement, parameters: Mapping[str, Any]
) -> list[tuple[Any, ...]] | None:
    """The rows (those RETURNING gives, for a write) of a kept statement run in the
    session's transaction through psycopg, as SQLAlchemy would convert them; None where
    SQLAlchemy must run it (see the module)."""
    connection = session.connection()
    if not _direct(connection):
        return None
    compiled = driver_statement(statement, connection.dialect)
    if compiled is None:
        return None
    values = compiled.parameters(parameters)
    driver = connection.connection.driver_connection
    try:
        rows = run_prepared(driver, compiled.sql, values)
    except connection.dialect.loaded_dbapi.Error as error:
        lost = connection_lost(connection.dialect, error, driver)
        if lost:
            connection.invalidate(error)
        raise exc.DBAPIError.instance(
            compiled.sql,
            values,
            error,
            connection.dialect.loaded_dbapi.Error,
            hide_parameters=True,
            dialect=connection.dialect,
            connection_invalidated=lost,
        ) from error
    return [compiled.row(row) for row in rows]


def run(
    session: Session, statement: Executable, parameters: Mapping[str, Any], **options: Any
) -> Sequence[Any]:
    """The rows of a kept statement that returns rows (a SELECT, a write's RETURNING) in the
    session's transaction: through psycopg where `execute` can, else through the session
    (its autoflush included), prepared where the transaction asks for it; `options` are the
    session's execution options."""
    rows = execute(session, cast(ClauseElement, statement), parameters)
    if rows is not None:
        return rows
    result = session.execute(statement, parameters, execution_options={PREPARED: True, **options})
    return result.all()


def _direct(connection: Connection) -> bool:
    if not connection.get_execution_options().get(PREPARED):
        return False  # the transaction did not ask (SQLite, prepared statements off)
    dispatch = connection.dispatch
    return not (dispatch.before_cursor_execute or dispatch.after_cursor_execute)
