"""What several benchmarks share: a scratch PostgreSQL database, a SQL statement counter, and
the run on the embedded SQLite default and then, when DATABASE_URL names one, PostgreSQL."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def postgres_scratch(server: str = "", prefix: str = "odock_bench") -> Iterator[str]:
    """The URL of a new database on the server (DATABASE_URL's by default), dropped after."""
    server = server or os.environ.get("DATABASE_URL", DEFAULT_SERVER)
    url = make_url(server.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class StatementCounter:
    """Counts the statements an engine runs, by the kind `kind_of` names (and, when asked,
    its COMMITs)."""

    def __init__(self, engine: Any, kind_of: Callable[[str], str], *, commits: bool = False):
        self.counts: Counter[str] = Counter()
        self.kind_of = kind_of
        event.listen(engine, "before_cursor_execute", self.on_statement)
        if commits:
            event.listen(engine, "commit", self.on_commit)

    def on_statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.counts[self.kind_of(statement)] += 1

    def on_commit(self, _conn: Any) -> None:
        self.counts["COMMIT"] += 1


def on_both_backends(run_backend: Callable[[str, str, str, int], None], n: int) -> None:
    """run_backend(label, database_url, broker_url, n) on SQLite, then on a scratch database
    of DATABASE_URL's PostgreSQL server when it names one."""
    with tempfile.TemporaryDirectory() as scratch:
        broker = f"sqla+sqlite:///{scratch}/broker.sqlite3"
        run_backend("sqlite", f"sqlite:///{scratch}/bench.sqlite3", broker, n)
        server = os.environ.get("DATABASE_URL", "")
        if server.startswith("postgresql"):
            with postgres_scratch(server) as url:
                run_backend("postgresql", url, broker, n)
