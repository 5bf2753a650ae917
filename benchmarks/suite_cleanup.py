"""The suite's per-test cleanup (the clean_db fixture): DELETE from every table one statement
at a time (before issue 18), a probe then DELETE only the tables holding rows (until 5 Dec),
every DELETE sent in one round trip (tests/support/cleanup.py, now), and TRUNCATE for
reference, on a database of its own; milliseconds per cleanup, CPU beside wall."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from sqlalchemy import Engine, text

from benchmarks.scratch import postgres_scratch
from models.base import Base
from models.db import make_engine, make_session_factory
from models.migrate import upgrade
from models.settings import Settings
from tests.support import factories as f
from tests.support.cleanup import TABLES, delete_tables_with_rows, empty_tables

ROUNDS = int(os.environ.get("ROUNDS", "30"))


def delete_every_table(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


def probe_then_delete(engine: Engine) -> None:
    with engine.begin() as connection:
        delete_tables_with_rows(connection)


def truncate_every_table(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in TABLES)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))


def measure(engine: Engine, clean: Callable[[Engine], None], fill: Callable[[], None] | None):
    wall = cpu = 0.0
    for _ in range(ROUNDS):
        if fill:
            fill()
        w, c = time.perf_counter(), time.process_time()
        clean(engine)
        wall += time.perf_counter() - w
        cpu += time.process_time() - c
    return wall / ROUNDS * 1000, cpu / ROUNDS * 1000


def main() -> None:
    with postgres_scratch(prefix="odock_bench_cleanup") as database_url:
        settings = Settings(
            database_url=database_url,
            secret_key="benchmark-secret-key-0123456789abcdef",
        )
        engine = make_engine(settings)
        upgrade(engine)
        sessions = make_session_factory(engine)

        def fill() -> None:  # what a typical test leaves: an org, people, a team, a key
            with sessions() as session:
                org = f.make_org(session)
                user = f.make_user(session, org)
                team = f.make_team(session, org)
                f.add_member(session, team, user)
                f.make_key(session, org, owner=user)
                session.commit()

        print(f"load {os.getloadavg()[0]:.1f}, {ROUNDS} rounds, {len(TABLES)} tables")
        for label, clean in [
            ("DELETE from every table", delete_every_table),
            ("probe, DELETE tables with rows", probe_then_delete),
            ("every DELETE in one round trip", empty_tables),
            ("TRUNCATE every table", truncate_every_table),
        ]:
            for state, filler in [("after a test's rows", fill), ("nothing written", None)]:
                wall, cpu = measure(engine, clean, filler)
                print(f"{label:32} {state:20} {wall:7.1f} ms wall {cpu:6.1f} ms CPU")
        engine.dispose()


if __name__ == "__main__":
    main()
