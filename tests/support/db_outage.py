"""PostgreSQL faults for tests: the run's database refusing connections, as during a
restart, and a backend terminated under its statement."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url

from models.settings import Settings


@contextmanager
def refusing_connections(settings: Settings, engine: Engine) -> Iterator[None]:
    """The run's database refuses new connections and drops the open ones, as during a
    restart; it takes them again on leaving."""
    url = make_url(settings.database_url)
    name = url.database
    maintenance = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with maintenance.connect() as server:
            server.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            terminate_backends(server, name)
        engine.dispose()  # this process's connections were dropped too
        yield
    finally:
        with maintenance.connect() as server:
            server.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        maintenance.dispose()


def terminate_every_backend(engine: Engine) -> None:
    """Every backend of `engine`'s database is terminated, from a connection of its own to
    another database: one taken from `engine`'s pool would be spared and, returned to the
    pool, be the next one handed out."""
    url = engine.url
    maintenance = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with maintenance.connect() as server:
            terminate_backends(server, url.database)
    finally:
        maintenance.dispose()


def terminate_backends(server: Connection, name: str | None) -> None:
    """Every backend on database `name` but the caller's is terminated mid-whatever, and gone
    on return (PostgreSQL 14's timeout argument waits for each to exit): its goodbye is in
    the client's socket before the test's next step."""
    server.execute(
        text(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = :name AND pid <> pg_backend_pid()"
        ),
        {"name": name},
    )


def backends_waiting_on_a_lock(engine: Engine) -> list[int]:
    """The pids of this engine's database's backends waiting for a lock (its own tests'
    held statements), found apart from their termination: a filter that calls
    pg_terminate_backend in the same query may run it on every backend of the server."""
    with engine.connect() as connection:
        return list(
            connection.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
        )


def terminate_pids(engine: Engine, pids: list[int]) -> None:
    """These backends terminated, and gone on return (see terminate_backends)."""
    with engine.connect() as connection:
        for pid in pids:
            connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
