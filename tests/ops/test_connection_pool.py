"""The PostgreSQL pool pings a connection only when it sat idle, and survives one that the
server closed meanwhile (a restart, an idle timeout)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from models import db
from models.settings import Settings


@pytest.fixture
def pool(settings: Settings) -> Iterator[Engine]:
    if settings.is_sqlite:
        pytest.skip("the idle ping is PostgreSQL's (SQLite has no server to lose)")
    engine = db.make_engine(settings, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def count_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    real = engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT pg_backend_pid()")))


def test_a_connection_used_moments_ago_is_handed_out_without_a_ping(pool, monkeypatch) -> None:
    pings = count_pings(pool, monkeypatch)
    first, second = backend_pid(pool), backend_pid(pool)
    assert first == second  # the same pooled connection
    assert pings == []


def test_an_idle_connection_closed_by_the_server_is_replaced(pool, settings, monkeypatch) -> None:
    pings = count_pings(pool, monkeypatch)
    gone = backend_pid(pool)
    admin = create_engine(settings.database_url)
    with admin.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": gone})
    admin.dispose()
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert backend_pid(pool) != gone
    assert pings == [1]
