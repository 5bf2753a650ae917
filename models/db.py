"""Engines and sessions. Callers own the transaction; domain operations never commit."""

from __future__ import annotations

import os
import random
import re
import select
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from psycopg import RawCursor
from psycopg.pq import ExecStatus
from sqlalchemy import Engine, Select, create_engine, event, exc, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import ClauseElement

from models.settings import Settings

SessionFactory = sessionmaker[Session]

ODOCK_MODE_KEY = "odock.mode"

# A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 10.0
WAL_SWITCH_TIMEOUT = 30.0  # seconds, as the busy timeout of the broker's file


def conflict_insert(dialect_name: str) -> Callable[..., Any]:
    """The INSERT of this database that takes ON CONFLICT (PostgreSQL's or SQLite's; both
    speak the same clauses)."""
    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert


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
    # The most recently returned connection first: after a burst, the quieter traffic keeps
    # to one warm backend whose prepared reads have their generic plans, instead of rotating
    # over every connection the burst opened (measured in docs/benchmarks/scim.md).
    kwargs.setdefault("pool_use_lifo", True)
    # No server-side prepared statements: a generic plan for `LIKE $1` cannot use the
    # trigram indexes (user search went from 3 ms to 50 ms at 100,000 users once psycopg
    # prepared it), and a connection pooler in transaction mode cannot keep them anyway.
    kwargs["connect_args"] = {"prepare_threshold": None, **kwargs.get("connect_args", {})}
    engine = create_engine(settings.database_url, **kwargs)
    _ping_when_idle(engine)
    event.listen(engine, "handle_error", _backend_gone_is_a_disconnect)
    if settings.database_prepared_reads:
        event.listen(engine, "do_execute", _prepare_when_asked)
        _PREPARING_DIALECTS.add(engine.dialect)
    return engine


def make_web_engine(settings: Settings) -> Engine:
    """The web's engine. On PostgreSQL a statement waits for another session's lock at most
    WEB_DATABASE_LOCK_TIMEOUT and runs at most WEB_DATABASE_STATEMENT_TIMEOUT: the request is
    then answered 503 with Retry-After (webhooks/errors.py) and the IdP sends it again, instead
    of holding the IdP's request (and a web thread) for as long as the lock is held. Tasks and
    commands wait longer (make_worker_engine)."""
    if settings.is_sqlite:
        return make_engine(settings)  # bounded by SQLITE_BUSY_TIMEOUT
    lock_ms = round(settings.web_database_lock_timeout * 1000)
    statement_ms = round(settings.web_database_statement_timeout * 1000)
    options = f"-c lock_timeout={lock_ms} -c statement_timeout={statement_ms}"
    return make_engine(settings, connect_args={"options": options})


def make_worker_engine(settings: Settings) -> Engine:
    """The engine of the task workers, beat and the commands (worker.runtime). On PostgreSQL a
    statement waits for another session's lock at most WORKER_DATABASE_LOCK_TIMEOUT: past it
    the statement fails with a lock timeout, a transient error, and the task is retried with
    backoff (worker/tasks/base.py) instead of waiting, its worker slot held, for as long as the
    other transaction lasts (an admin's session left open on the person). A code path that
    must wait longer says so with `SET LOCAL lock_timeout`. No statement timeout: a bulk
    import's statements may run long."""
    if settings.is_sqlite:
        return make_engine(settings)  # bounded by SQLITE_BUSY_TIMEOUT
    lock_ms = round(settings.worker_database_lock_timeout * 1000)
    return make_engine(settings, connect_args={"options": f"-c lock_timeout={lock_ms}"})


PREPARED = "odock_prepared"
"""Execution option: on PostgreSQL (DATABASE_PREPARED_READS), run this statement as a
server-side prepared statement, planned once per connection. For fixed-shape reads whose
generic plan is as good as a custom one (equality on keys, never `LIKE $1`); elsewhere it is
ignored."""


def prepare_transaction(session: Session) -> None:
    """Every statement of the session's current transaction runs as PREPARED asks (on
    PostgreSQL with DATABASE_PREPARED_READS), the flush's INSERTs and UPDATEs included: for a
    write whose statements all have fixed shapes (keys and values, never `LIKE $1`). Parsing
    and planning a SCIM create's or deactivation's statements afresh cost PostgreSQL about
    as much CPU as running them. Lasts until the transaction ends."""
    if session.get_bind().dialect in _PREPARING_DIALECTS:
        session.connection().execution_options(**{PREPARED: True})


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


# The dialects of engines made with DATABASE_PREPARED_READS: each engine has its own, shared
# by its copies with other execution options, and kept when its pool is disposed.
_PREPARING_DIALECTS: weakref.WeakSet[Dialect] = weakref.WeakSet()


@dataclass(frozen=True)
class DriverStatement:
    """A statement compiled once for psycopg: its SQL with PostgreSQL's own placeholders
    ($1, $2...) for a RawCursor, the parameter each stands for, SQLAlchemy's conversions of
    its parameters, and of its returned columns by position."""

    compiled: Any
    sql: str
    order: tuple[str, ...]
    binds: dict[str, Callable[[Any], Any]]
    columns: tuple[tuple[int, Callable[[Any], Any]], ...]

    def parameters(self, given: Mapping[str, Any]) -> list[Any]:
        values: dict[str, Any] = self.compiled.construct_params(given)
        for name, convert in self.binds.items():
            values[name] = convert(values[name])
        return [values[name] for name in self.order]

    def row(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        if not self.columns:
            return row
        values = list(row)
        for position, convert in self.columns:
            if values[position] is not None:
                values[position] = convert(values[position])
        return tuple(values)


def _compile_for_driver(statement: ClauseElement, dialect: Dialect) -> DriverStatement | None:
    compiled: Any = statement.compile(dialect=dialect)
    if compiled.post_compile_params or compiled.literal_execute_params:
        return None  # expanded per execution (IN lists): SQLAlchemy's to run
    numbered = numbered_placeholders(compiled.string)
    if numbered is None:
        return None
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
    return DriverStatement(compiled, *numbered, binds, tuple(columns))


# SQLAlchemy's psycopg dialect writes pyformat: a parameter as %(name)s, a literal % doubled.
_PYFORMAT = re.compile(r"%(?:\((?P<name>[^)]*)\)s|(?P<other>.?))", re.DOTALL)


def numbered_placeholders(sql: str) -> tuple[str, tuple[str, ...]] | None:
    """SQLAlchemy's pyformat SQL with PostgreSQL's placeholders instead, as psycopg would
    send it (a name used twice is one $n), and the names in their numbers' order; None for
    a placeholder of another kind.

    Done once per kept statement, its SQL then sent as it is through a RawCursor: psycopg
    redoes the conversion on every execution of a statement longer than 4 kB or with more
    than 50 parameters (its cache skips those), as a SCIM deactivation's one combined write
    (models.change_writes, 52 parameters) is: 0.2 ms of CPU per request, measured."""
    numbers: dict[str, int] = {}

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name is None:
            if match["other"] != "%":
                raise ValueError(match[0])
            return "%"
        return f"${numbers.setdefault(name, len(numbers) + 1)}"

    try:
        converted = _PYFORMAT.sub(replace, sql)
    except ValueError:
        return None  # psycopg's positional %s or a stray %: SQLAlchemy's to run
    return converted, tuple(numbers)


# Statement object id -> (the statement, kept so the id stays its own; its compiled form).
_DRIVER_STATEMENTS: dict[int, tuple[ClauseElement, DriverStatement | None]] = {}


def driver_statement(statement: ClauseElement, dialect: Dialect) -> DriverStatement | None:
    """A kept statement object's compiled form for psycopg (None: SQLAlchemy must run it, its
    IN lists expanded per execution)."""
    found = _DRIVER_STATEMENTS.get(id(statement))
    if found is not None and found[0] is statement:
        return found[1]
    compiled = _compile_for_driver(statement, dialect)
    if len(_DRIVER_STATEMENTS) > 2048:
        _DRIVER_STATEMENTS.clear()
    _DRIVER_STATEMENTS[id(statement)] = (statement, compiled)
    return compiled


def driver_read(
    session: Session, statement: Select[Any], parameters: Mapping[str, Any]
) -> Sequence[tuple[Any, ...]] | None:
    """The rows of a PREPARED read run straight through psycopg on a pooled connection in
    autocommit, as SQLAlchemy would convert them; None where SQLAlchemy must run it (SQLite,
    prepared reads off, a session in a transaction, statement listeners, a statement
    expanded per execution).

    For hot reads on statement objects that are kept: SQLAlchemy's execution layer (the
    session's connection, the execution context, the result and its description) cost more
    CPU than PostgreSQL's answer to a prepared get."""
    bind = session.get_bind()
    if not isinstance(bind, Engine) or bind.dialect not in _PREPARING_DIALECTS:
        return None  # only PostgreSQL engines prepare (a session bound to a connection: its own)
    if session.in_transaction():
        return None  # read what the session's own transaction sees
    if bind.dispatch.before_cursor_execute or bind.dispatch.after_cursor_execute:
        return None  # something watches every statement (tracing, a test): let it see this
    compiled = driver_statement(statement, bind.dialect)
    if compiled is None:
        return None
    values = compiled.parameters(parameters)
    driver_error = bind.dialect.loaded_dbapi.Error
    try:
        pooled = bind.raw_connection()
    except driver_error as error:  # refused: raised as SQLAlchemy's own connect would
        raise _wrapped(bind.dialect, None, None, error, lost=False) from error
    try:
        rows = _run_prepared_read(_read_cursor(pooled), compiled.sql, values)
    except driver_error as error:
        lost = connection_lost(bind.dialect, error, pooled.dbapi_connection)
        if lost:
            pooled.invalidate(error)
        raise _wrapped(bind.dialect, compiled.sql, values, error, lost=lost) from error
    finally:
        pooled.close()
    return [compiled.row(row) for row in rows]


def _wrapped(
    dialect: Dialect, sql: str | None, values: Any, error: Exception, *, lost: bool
) -> exc.StatementError:
    """A driver error as SQLAlchemy raises it (OperationalError, IntegrityError...), which
    the web's error handlers know, without the statement's parameters."""
    return exc.DBAPIError.instance(
        sql,
        values,
        error,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        dialect=dialect,
        connection_invalidated=lost,
    )


# The pool record's key for its connection's read cursor (see _read_cursor).
_READ_CURSOR = "odock.read_cursor"


def _read_cursor(pooled: Any) -> Any:
    """The psycopg RawCursor kept with a pooled connection for driver reads: making and
    closing one per read cost a third of the read's CPU in psycopg (10 of 34 us). It holds
    its last result (one page at most) until the next read; the pool forgets it with the
    connection."""
    connection = pooled.driver_connection
    cursor = pooled.info.get(_READ_CURSOR)
    if cursor is None or cursor.closed or cursor.connection is not connection:
        cursor = pooled.info[_READ_CURSOR] = RawCursor(connection)
    return cursor


def _run_prepared_read(cursor: Any, sql: str, values: list[Any]) -> list[tuple[Any, ...]]:
    # Outside a transaction: no BEGIN and ROLLBACK round trips, as a read needs none.
    connection = cursor.connection
    connection.autocommit = True
    try:
        return _prepared_rows(cursor, sql, values)
    finally:
        connection.autocommit = False


def run_prepared(connection: Any, sql: str, values: list[Any]) -> list[tuple[Any, ...]]:
    """The rows (none for a statement that returns none) of a prepared statement, its
    placeholders numbered (DriverStatement.sql), run on a psycopg connection as it stands,
    in its transaction or in autocommit."""
    with RawCursor(connection) as cursor:
        return _prepared_rows(cursor, sql, values)


def _prepared_rows(cursor: Any, sql: str, values: list[Any]) -> list[tuple[Any, ...]]:
    connection = cursor.connection
    connection.prepare_threshold = _ONLY_WHEN_ASKED
    try:
        cursor.execute(sql, values, prepare=True)
    finally:
        connection.prepare_threshold = None
    # The result's status, not cursor.description: that builds a Column object for each
    # returned column on every call (4% of a get's CPU under gunicorn, profiled).
    if cursor.pgresult.status != ExecStatus.TUPLES_OK:
        return []  # a statement that returns no rows
    rows: list[tuple[Any, ...]] = cursor.fetchall()
    return rows


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


# A backend terminated (pg_terminate_backend, a failover, a restart), ended by the server for
# idling (idle_session_timeout 57P05, idle_in_transaction_session_timeout 25P03: both FATAL,
# a pooler or a DBA may set them) or a connection failure: the server sends its error and then
# closes the socket, so psycopg may not yet know the connection is gone when the error is
# raised.
_BACKEND_GONE_SQLSTATES = ("08", "25P03", "57P01", "57P02", "57P03", "57P05")


def backend_gone(error: BaseException) -> bool:
    """The server ended this connection's session: nothing more can be sent on it."""
    sqlstate = getattr(error, "sqlstate", None)
    return bool(sqlstate) and str(sqlstate).startswith(_BACKEND_GONE_SQLSTATES)


def connection_lost(dialect: Dialect, error: BaseException, dbapi_connection: Any) -> bool:
    """Whether a driver error raised outside SQLAlchemy's execution (models.driver_writes,
    driver_read) left its connection unusable: it must be invalidated, as SQLAlchemy does
    for its own statements, or the session's ROLLBACK fails on it again."""
    return dialect.is_disconnect(cast(Any, error), dbapi_connection, None) or backend_gone(error)


def _backend_gone_is_a_disconnect(context: Any) -> None:
    """SQLAlchemy drops the connection (and every older one of its pool, which the same
    restart or termination most likely ended too) instead of sending the ROLLBACK that would
    fail again on a closed socket, e.g. as a request's session closes after its 503."""
    if not context.is_disconnect and backend_gone(context.original_exception):
        context.is_disconnect = True


def _heard_from_server(dbapi_connection: Any, driver_error: type[Exception]) -> bool:
    """Whether an idle PostgreSQL connection has something to read: a connection at rest in
    the pool has nothing pending, so this is the server's goodbye (a terminated backend's
    error, the socket closed) or something to look at. One poll(), no round trip."""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:
        return False  # SQLite: no server
    try:
        poller = select.poll()
        poller.register(pgconn.socket, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, driver_error):
        return True  # psycopg knows it is closed already


def _ping_when_idle(engine: Engine) -> None:
    """pool_pre_ping, but only for connections that sat idle in the pool.

    A busy pool hands out connections used milliseconds ago: pinging those cost a round
    trip on every request. A connection that waited longer (where a database restart or an
    idle timeout may have closed it) is still pinged, and so is a recent one the server
    wrote to while it rested (its backend terminated: the error and the closed socket are
    there to read); a dead one makes the pool drop every connection older than now and
    connect afresh. A restart during steady traffic can still fail the requests already
    holding a connection, as without any ping.
    """

    def remember_idle_since(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None:
            return
        recent = time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS
        if recent and not _heard_from_server(dbapi_connection, engine.dialect.loaded_dbapi.Error):
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
    enter_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
    # LIKE compares as PostgreSQL's does (case-exact): case-insensitive matches lower() both
    # sides, and lower() folds every script as PostgreSQL's does, not only ASCII.
    cursor.execute("PRAGMA case_sensitive_like=ON")
    cursor.close()
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)


def enter_wal(cursor: Any) -> None:
    """Put the SQLite file in WAL mode (it stays so). Processes opening a fresh file together
    (a worker beside its beat) can deadlock upgrading their locks for the switch, and SQLite
    answers one of them "database is locked" at once, without its busy timeout: it tries again
    until WAL_SWITCH_TIMEOUT."""
    give_up = time.monotonic() + WAL_SWITCH_TIMEOUT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > give_up:
                raise
            time.sleep(random.uniform(0.005, 0.05))


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
# a serialization failure or deadlock victim (40), too many clients (53300, as a pooler
# reports it), a lock or statement timeout (55P03, 57014), a server shutting down or
# starting (57P01-57P03), a session the server ended for idling (57P05, 25P03: the work is
# sent again on a new connection).
TRANSIENT_SQLSTATE_PREFIXES = (
    "08",
    "25P03",
    "40",
    "53300",
    "55P03",
    "57014",
    "57P01",
    "57P02",
    "57P03",
    "57P05",
)
# SQLite's: another writer held the database past the busy timeout.
TRANSIENT_SQLITE_MESSAGES = ("database is locked", "database table is locked", "database is busy")


def unique_violation(error: BaseException) -> bool:
    """A unique key refused the write (23505), raised by SQLAlchemy or by the driver itself
    (a COPY is sent to it directly)."""
    cause = getattr(error, "orig", error)
    return getattr(cause, "sqlstate", None) == "23505"


def is_transient(error: exc.DBAPIError) -> bool:
    """The database could not serve this statement now, though the same one may succeed when
    sent again; anything else (a missing table, a bad statement) is a bug, not a busy day."""
    cause = error.orig
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(TRANSIENT_SQLSTATE_PREFIXES)
    if isinstance(cause, sqlite3.OperationalError):
        return str(cause).startswith(TRANSIENT_SQLITE_MESSAGES)
    return True  # no SQLSTATE from PostgreSQL: the connection itself failed


STATEMENT_LOGGED = 300  # characters of the failed statement a log line carries


def database_error_facts(error: BaseException) -> dict[str, Any]:
    """What a log line says of a database error, to tell its cause apart (a lock timeout from
    a statement timeout, a dropped connection, an exhausted pool): SQLAlchemy's class, the
    driver's, PostgreSQL's SQLSTATE with its message and context (which lock, which relation),
    else the driver's message (SQLite's, a connection refused or turned away), and the
    statement's first characters. Never the statement's parameters
    (they hold the request's data, a token's hash) nor the connection's URL."""
    cause = getattr(error, "orig", None) or error
    facts: dict[str, Any] = {
        "error_class": type(error).__name__,
        "driver_error": f"{type(cause).__module__}.{type(cause).__qualname__}",
    }
    if isinstance(error, exc.DBAPIError):
        facts["connection_invalidated"] = error.connection_invalidated
        if error.statement:
            facts["statement"] = " ".join(error.statement.split())[:STATEMENT_LOGGED]
    sqlstate = getattr(cause, "sqlstate", None)
    diag = getattr(cause, "diag", None)
    if sqlstate:
        facts["sqlstate"] = sqlstate
        facts["message"] = getattr(diag, "message_primary", None)
        facts["context"] = getattr(diag, "context", None)
    else:  # SQLite's, a connection that failed ("too many clients"), a pool with none free
        facts["message"] = " ".join(str(cause).split())[:STATEMENT_LOGGED]
    return facts


def is_unavailable(error: BaseException) -> bool:
    """The database refused or dropped the connection, or was too busy for this statement:
    the same work may succeed when tried again (a missing table or a bad statement will not)."""
    if not isinstance(error, exc.DBAPIError):
        return False
    if error.connection_invalidated:  # SQLAlchemy saw the connection die under the statement
        return True
    if isinstance(error, exc.OperationalError):
        return is_transient(error)
    # The server ended the session whatever the error's class (25P03 is an InternalError).
    return error.orig is not None and backend_gone(error.orig)
