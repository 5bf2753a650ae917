"""The embedded broker: kombu's SQLAlchemy transport on a WAL-mode SQLite file.

kombu hands every transport option to `create_engine`, so `polling_interval` (which the
virtual transport itself reads) would crash it; and a busy SQLite file needs WAL and a busy
timeout to carry tasks between processes without "database is locked".
"""

from __future__ import annotations

import weakref
from json import loads
from queue import Empty
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqla
from kombu.utils.encoding import bytes_to_str
from sqlalchemy import Engine, create_engine, delete, event, text
from sqlalchemy.exc import IntegrityError

from models.db import enter_wal, private_sqlite_file

ENGINE_OPTIONS_NOT_FOR_SQLALCHEMY = {
    "queue_tablename",
    "message_tablename",
    "callback",
    "errback",
    "max_retries",
    "interval_start",
    "interval_step",
    "interval_max",
    "retry_errors",
    "polling_interval",
}


_SWEPT: weakref.WeakSet[Engine] = weakref.WeakSet()


def _wal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    enter_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _create_tables_under_the_write_lock(engine: Engine) -> None:
    """kombu's tables, made by whichever process takes the file's write lock first. kombu's own
    `create_all` looks, then creates, table by table and index by index: processes opening a
    fresh file together (a worker beside its beat) failed on "table kombu_queue already
    exists", or on the next table. After this, kombu's look finds everything made."""
    with engine.connect() as connection:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        kombu_sqla.metadata.create_all(connection)
        connection.commit()


class Channel(kombu_sqla.Channel):
    def _engine_from_config(self) -> Engine:
        conninfo = self.connection.client
        options = {
            key: value
            for key, value in conninfo.transport_options.items()
            if key not in ENGINE_OPTIONS_NOT_FOR_SQLALCHEMY
        }
        url = conninfo.hostname
        options.setdefault("hide_parameters", True)  # task arguments stay out of error text
        if url.startswith("sqlite"):
            private_sqlite_file(url)
            options.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **options)
        if url.startswith("sqlite"):
            event.listen(engine, "connect", _wal)
            _create_tables_under_the_write_lock(engine)
        return engine

    def _open(self) -> Any:
        """kombu's, and once per broker in this process: the messages kombu kept, invisible,
        before `_get` deleted them (a file that served an older version) are deleted."""
        opened = super()._open()
        engine = opened[0]
        if engine not in _SWEPT:
            _SWEPT.add(engine)
            with engine.begin() as connection:
                hidden = self.message_cls.visible == False  # noqa: E712 (a column, not a bool)
                connection.execute(delete(self.message_cls).where(hidden))
        return opened

    def _get_or_create(self, queue: str) -> Any:
        """kombu's, except when another process (a worker and a beat starting together on a
        fresh file) created the queue between kombu's look and its insert: kombu's mutex holds
        within one process only, and the unique name made the loser's first publish or poll
        crash. The loser takes the winner's row."""
        try:
            return super()._get_or_create(queue)
        except IntegrityError:
            self.session.rollback()
            return self.session.query(self.queue_cls).filter(self.queue_cls.name == queue).one()

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        """kombu's `_get`, except that the message taken is deleted: kombu keeps it, marked
        invisible, for good, and every later poll of every queue scans past all of them (its
        query orders by time, and no index serves `visible`), under the write lock. A message
        taken and not acknowledged is put back by kombu from the worker's memory (`_restore`),
        never from that row."""
        found = self._get_or_create(queue)
        waiting = (
            self.session.query(self.message_cls)
            .filter(self.message_cls.queue_id == found.id)
            .filter(self.message_cls.visible != False)  # noqa: E712 (kombu's own filter)
        )
        if self.session.bind.name == "sqlite":
            # Most polls find nothing: they look without the write lock (a WAL read), which
            # every publisher and every other worker's take would otherwise queue behind.
            if waiting.with_entities(self.message_cls.id).limit(1).first() is None:
                self.session.commit()
                raise Empty()
            self.session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
        try:
            message = (
                waiting.with_for_update()
                .order_by(self.message_cls.sent_at, self.message_cls.id)
                .limit(1)
                .first()
            )
            if message is None:
                raise Empty()
            self.session.delete(message)
            return loads(bytes_to_str(message.payload))
        finally:
            self.session.commit()


class Transport(kombu_sqla.Transport):
    Channel = Channel


def register() -> None:
    """Make `sqla+...` broker URLs use this transport in this process."""
    TRANSPORT_ALIASES["sqla"] = "worker.sqlite_broker:Transport"
    TRANSPORT_ALIASES["sqlalchemy"] = "worker.sqlite_broker:Transport"
