"""The connection pool: an idle connection is checked before use, a busy one is not."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from models import db
from tests.support.cleanup import empty_tables
from tests.support.wait import wait_until


def test_a_dropped_idle_connection_is_replaced_before_use(settings, monkeypatch):
    engine = db.make_engine(settings, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as connection:
            dropped = connection.connection.driver_connection
        dropped.close()  # as a server restart or a firewall would, behind the pool's back
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)

        with engine.connect() as connection:
            assert connection.scalar(text("SELECT 1")) == 1
            assert connection.connection.driver_connection is not dropped
    finally:
        engine.dispose()


def test_a_connection_in_constant_use_is_not_pinged(settings, monkeypatch):
    engine = db.make_engine(settings, pool_size=1, max_overflow=0)
    pings: list[object] = []
    monkeypatch.setattr(engine.dialect, "do_ping", pings.append)
    try:
        for _ in range(3):
            with engine.connect() as connection:
                assert connection.scalar(text("SELECT 1")) == 1
        assert pings == []
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        with engine.connect() as connection:
            assert len(pings) == 1  # the control: idle long enough, it is pinged
    finally:
        engine.dispose()


def test_after_a_burst_the_last_returned_connection_serves_next(settings):
    if settings.is_sqlite:
        pytest.skip("PostgreSQL's pool (an embedded database has no backends to keep warm)")
    engine = db.make_engine(settings, pool_size=3, max_overflow=0)
    try:
        held = [engine.connect() for _ in range(3)]  # a burst opens three connections
        drivers = [connection.connection.driver_connection for connection in held]
        for connection in held:
            connection.close()  # returned in order: the third last
        for _ in range(3):
            with engine.connect() as connection:
                assert connection.connection.driver_connection is drivers[-1]
    finally:
        engine.dispose()


def test_the_web_engine_bounds_lock_waits_and_statements_and_the_others_wait(settings):
    if settings.is_sqlite:
        pytest.skip("PostgreSQL's timeouts (the embedded database has SQLITE_BUSY_TIMEOUT)")
    bounded = settings.model_copy(
        update={"web_database_lock_timeout": 1.5, "web_database_statement_timeout": 20}
    )
    web, tasks = db.make_web_engine(bounded), db.make_engine(bounded)
    try:
        with web.connect() as connection:
            assert connection.scalar(text("SHOW lock_timeout")) == "1500ms"
            assert connection.scalar(text("SHOW statement_timeout")) == "20s"
        with tasks.connect() as connection:
            assert connection.scalar(text("SHOW lock_timeout")) == "0"
            assert connection.scalar(text("SHOW statement_timeout")) == "0"
    finally:
        web.dispose()
        tasks.dispose()


@pytest.mark.parametrize(
    ("setting", "in_transaction", "sqlstate"),
    [
        ("idle_session_timeout", False, "57P05"),
        ("idle_in_transaction_session_timeout", True, "25P03"),
    ],
)
def test_a_session_the_server_ended_for_idling_is_gone_and_worth_another_try(
    settings, setting, in_transaction, sqlstate
):
    """A pooler or a DBA may end idle sessions (idle_session_timeout, PostgreSQL 14) or idle
    transactions: the server sends a FATAL error and closes the connection. That is the
    connection lost, as a terminated backend is, and the work may be sent again on a new one
    (a task retries it, a request answers 503), not a database bug."""
    if settings.is_sqlite:
        pytest.skip("PostgreSQL's idle timeouts (the embedded database has no server sessions)")
    engine = db.make_engine(settings, pool_size=1, max_overflow=0)
    watcher = db.make_engine(settings, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as connection, watcher.connect() as watching:
            pid = connection.scalar(text("SELECT pg_backend_pid()"))
            connection.execute(text(f"SET {setting} = '50ms'"))
            connection.commit()
            if in_transaction:
                connection.scalar(text("SELECT 1"))  # a transaction left open

            def ended() -> bool:
                alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
                found = watching.scalar(alive, {"pid": pid})
                watching.rollback()
                return found == 0

            wait_until(ended, timeout=90, what="the server ending the idle session")
            with pytest.raises(DBAPIError) as lost:
                connection.scalar(text("SELECT 1"))
        assert getattr(lost.value.orig, "sqlstate", None) == sqlstate
        assert db.backend_gone(lost.value.orig)
        assert db.is_transient(lost.value)
        assert db.is_unavailable(lost.value)
    finally:
        engine.dispose()
        watcher.dispose()


def test_a_connection_returned_moments_ago_whose_backend_was_terminated_is_replaced(
    settings, engine
):
    """A fault test terminates its database's backends (tests/support/db_outage.py, waiting
    for each to exit) and the next test's cleanup (tests/conftest.py clean_db) takes a pooled
    connection used a moment before: the server's goodbye is in its socket, so it is pinged
    and replaced although it was idle for less than PING_AFTER_IDLE_SECONDS, and the cleanup
    runs on a fresh one (a guard: held before)."""
    if settings.is_sqlite:
        pytest.skip("PostgreSQL's backends (the embedded database has none to terminate)")
    pooled = db.make_engine(settings, pool_size=1, max_overflow=0)  # the run's tables: `engine`
    watcher = db.make_engine(settings, pool_size=1, max_overflow=0)
    try:
        with pooled.connect() as connection:
            pid = connection.scalar(text("SELECT pg_backend_pid()"))
            terminated = connection.connection.driver_connection
        with watcher.connect() as watching:
            gone = watching.scalar(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        assert gone is True

        empty_tables(pooled)
        with pooled.connect() as connection:
            assert connection.connection.driver_connection is not terminated
            assert connection.scalar(text("SELECT pg_backend_pid()")) != pid
    finally:
        pooled.dispose()
        watcher.dispose()
