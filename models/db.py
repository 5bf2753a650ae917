"""Engines and sessions. Callers own the transaction; domain operations never commit."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, make_url
from sqlalchemy.orm import Session, sessionmaker

from models.settings import Settings

SessionFactory = sessionmaker[Session]

ODOCK_MODE_KEY = "odock.mode"

# A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 10.0


def make_engine(settings: Settings, **kwargs: Any) -> Engine:
    # An error's text (and so a logged traceback) never carries the statement's parameters:
    # search terms, emails, payload fragments.
    kwargs.setdefault("hide_parameters", True)
    if settings.is_sqlite:
        private_sqlite_file(settings.database_url)
        engine = create_engine(
            settings.database_url,
            connect_args={"timeout": settings.sqlite_busy_timeout, "check_same_thread": False},
            **kwargs,
        )
        busy_ms = round(settings.sqlite_busy_timeout * 1000)
        event.listen(engine, "connect", lambda connection, _: _sqlite_pragmas(connection, busy_ms))
        event.listen(engine, "begin", _sqlite_begin_immediate)
        _ping_when_idle(engine)
        return engine
    kwargs.setdefault("pool_size", settings.database_pool_size)
    kwargs.setdefault("max_overflow", 10)
    # No server-side prepared statements: a generic plan for `LIKE $1` cannot use the
    # trigram indexes (user search went from 3 ms to 50 ms at 100,000 users once psycopg
    # prepared it), and a connection pooler in transaction mode cannot keep them anyway.
    kwargs.setdefault("connect_args", {"prepare_threshold": None})
    engine = create_engine(settings.database_url, **kwargs)
    _ping_when_idle(engine)
    if settings.database_prepared_reads:
        event.listen(engine, "do_execute", _prepare_when_asked)
    return engine


PREPARED = "odock_prepared"
"""Execution option: on PostgreSQL (DATABASE_PREPARED_READS), run this statement as a
server-side prepared statement, planned once per connection. For fixed-shape reads whose
generic plan is as good as a custom one (equality on keys, never `LIKE $1`); elsewhere it is
ignored."""

_ONLY_WHEN_ASKED = 1 << 30  # psycopg prepares nothing by count, only what it is asked to


def _prepare_when_asked(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    if not context.execution_options.get(PREPARED):
        return False  # SQLAlchemy executes it as usual
    connection = cursor.connection
    # psycopg ignores prepare=True while its threshold is None (prepare nothing); the
    # threshold stays None for every other statement.
    connection.prepare_threshold = _ONLY_WHEN_ASKED
    try:
        cursor.execute(statement, parameters, prepare=True)
    finally:
        connection.prepare_threshold = None
    return True


def private_sqlite_file(url: str) -> None:
    """Create the SQLite file of `url` readable by its owner only, and narrow an existing
    one; SQLite gives its -wal and -shm files the database file's mode."""
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    # Never open an existing database file: closing any descriptor of it drops every POSIX
    # lock this process holds on it, so another process's SQLite would think our open
    # connections gone and delete the WAL they still write to (a corrupt database).
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    except OSError:
        return  # no such directory, no permission: SQLite reports it when it connects
    for name in (path, f"{path}-wal", f"{path}-shm"):
        if os.path.exists(name):
            os.chmod(name, 0o600)


def _ping_when_idle(engine: Engine) -> None:
    """pool_pre_ping, but only for connections that sat idle in the pool.

    A busy pool hands out connections used milliseconds ago: pinging those cost a round
    trip on every request. A connection that waited longer (where a database restart or an
    idle timeout may have closed it) is still pinged, and a dead one makes the pool drop
    every connection older than now and connect afresh. A restart during steady traffic can
    still fail the requests already holding a connection, as without any ping.
    """

    def remember_idle_since(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.InvalidatePoolError(f"idle connection is gone: {error}") from error

    event.listen(engine, "checkin", remember_idle_since)
    event.listen(engine, "checkout", ping_if_idle)


def _sqlite_pragmas(dbapi_connection: Any, busy_ms: int) -> None:
    # Take over transaction control so BEGIN IMMEDIATE below is honoured.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
    # LIKE compares as PostgreSQL's does (case-exact): case-insensitive matches lower() both
    # sides, and lower() folds every script as PostgreSQL's does, not only ASCII.
    cursor.execute("PRAGMA case_sensitive_like=ON")
    cursor.close()
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _sqlite_begin_immediate(connection: Any) -> None:
    # A deferred transaction that later writes fails with "database is locked" at once
    # instead of waiting; taking the write lock up front makes writers queue politely.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine, *, odock_mode: str = "embedded") -> SessionFactory:
    """Sessions on `engine`; each carries the key store mode, so every domain operation that
    changes a key carries it out the same way (models/key_changes.py) without a settings
    argument on every caller."""
    return sessionmaker(engine, expire_on_commit=False, info={ODOCK_MODE_KEY: odock_mode})


@contextmanager
def transaction(factory: SessionFactory) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# PostgreSQL's error classes a request may meet and pass: a connection lost or refused (08),
# a serialization failure or deadlock victim (40), a lock or statement timeout (55P03,
# 57014), a server shutting down or starting (57P01-57P03).
TRANSIENT_SQLSTATE_PREFIXES = ("08", "40", "55P03", "57014", "57P01", "57P02", "57P03")
# SQLite's: another writer held the database past the busy timeout.
TRANSIENT_SQLITE_MESSAGES = ("database is locked", "database table is locked", "database is busy")


def is_transient(error: exc.OperationalError) -> bool:
    """The database could not serve this statement now, though the same one may succeed when
    sent again; anything else (a missing table, a bad statement) is a bug, not a busy day."""
    cause = error.orig
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(TRANSIENT_SQLSTATE_PREFIXES)
    if isinstance(cause, sqlite3.OperationalError):
        return str(cause).startswith(TRANSIENT_SQLITE_MESSAGES)
    return True  # no SQLSTATE from PostgreSQL: the connection itself failed
