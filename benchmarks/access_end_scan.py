"""The beat's end-date scan over 1,000,000 people on PostgreSQL when nothing is due: the due
query (access_end.due_user_ids), the departure-notice query (due_notice_ids) and one whole
tick of the task body, each timed, with the EXPLAIN of the due query.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
    /work/venv/bin/python benchmarks/access_end_scan.py [--people 1000000] [--runs 50]

The people are bulk-inserted with COPY: a tenth with an end date ahead (1 to 365 days, none
within the notice window), a twentieth revoked long ago with their date passed, the rest with
none. It creates (and drops) a database of its own; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.actions import access_end, departure_notices, organisations  # noqa: E402
from models.actor import Actor  # noqa: E402
from models.base import utcnow  # noqa: E402
from models.db import SessionFactory, make_engine, make_session_factory  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402
from worker.runtime import init_runtime  # noqa: E402

TARGET_MS = 100.0
CHUNK = 100_000
COLUMNS = (
    "id, organisation_id, name, email, email_key, role, status, access_ends_at, "
    "access_ends_source, created_at, updated_at"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    admin_url = make_url(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test").replace(
            "postgresql://", "postgresql+psycopg://", 1
        )
    )
    name = f"odock_bench_ends_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    settings = Settings(
        database_url=admin_url.set(database=name).render_as_string(hide_password=False),
        celery_broker_url="memory://",
        secret_key="benchmark-secret-key-0123456789abcdef",
        log_level="WARNING",
    )
    try:
        engine = make_engine(settings)
        upgrade(engine)
        sessions = make_session_factory(engine)
        seeded = seed(engine, sessions, args.people)
        init_runtime(settings)
        print(json.dumps({**seeded, **measure(engine, sessions, args.runs)}, indent=2))
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def seed(engine: Engine, sessions: SessionFactory, people: int) -> dict[str, Any]:
    with sessions() as session:
        org = organisations.create_organisation(
            session, name="Bench", slug="bench", actor=Actor.system("bench")
        )
        session.commit()
        org_id = org.id.hex
    rng = random.Random(19)
    now = utcnow()
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            for first in range(0, people, CHUNK):
                rows = "".join(
                    _row(org_id, n, now, rng) for n in range(first, min(people, first + CHUNK))
                )
                with cursor.copy(f"COPY users ({COLUMNS}) FROM STDIN") as copy:
                    copy.write(rows)
        raw.commit()
    finally:
        raw.close()
    inserted = time.perf_counter() - started
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE users"))
        counts = dict(
            connection.execute(
                text(
                    "SELECT status || CASE WHEN access_ends_at IS NULL THEN '' ELSE '+date' END,"
                    " count(*) FROM users GROUP BY 1"
                )
            ).all()
        )
    return {"people": people, "copy_seconds": round(inserted, 1), "rows_by_kind": counts}


def _row(org_id: str, n: int, now: datetime, rng: random.Random) -> str:
    kind = rng.random()
    status, ends, source = "ACTIVE", "\\N", "\\N"
    if kind < 0.10:  # ahead, past any notice window (the longest is 90 days)
        ends = (now + timedelta(days=91 + rng.random() * 274)).isoformat()
        source = "admin"
    elif kind < 0.15:  # revoked long ago, their date passed: never read again
        status = "REVOKED"
        ends = (now - timedelta(days=1 + rng.random() * 700)).isoformat()
        source = "ldap"
    stamp = now.isoformat()
    email = f"person{n}@bench.test"
    return (
        f"{uuid.uuid4().hex}\t{org_id}\tPerson {n}\t{email}\t{email}\tUSER\t{status}\t"
        f"{ends}\t{source}\t{stamp}\t{stamp}\n"
    )


def measure(engine: Engine, sessions: SessionFactory, runs: int) -> dict[str, Any]:
    from worker.tasks.access_end import end_due

    def due() -> int:
        with sessions() as session:
            return len(access_end.due_user_ids(session, now=utcnow(), limit=200))

    def notices() -> int:
        with sessions() as session:
            return len(departure_notices.due_notice_ids(session, now=utcnow()))

    figures = {
        "due_scan": _timed(due, runs),
        "notice_scan": _timed(notices, runs),
        "whole_tick": _timed(end_due, runs),
    }
    return {
        **figures,
        "explain_due_scan": _explain(engine),
        "target_ms": TARGET_MS,
        "met": all(f["median_ms"] < TARGET_MS for f in figures.values()),
    }


def _timed(work: Callable[[], int], runs: int) -> dict[str, Any]:
    work()  # warm: connection pool, plan cache
    found, times = 0, []
    for _ in range(runs):
        started = time.perf_counter()
        found = work()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "found": found,
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
        "max_ms": round(times[-1], 2),
    }


def _explain(engine: Engine) -> list[str]:
    """The plan of the due query as the task sends it (its parameters bound, lists expanded)."""
    query = access_end.due_query(now=utcnow(), limit=200)
    compiled = query.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    params = {k: v.value if isinstance(v, StrEnum) else v for k, v in compiled.params.items()}
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + compiled.string, params)
        return [row[0] for row in rows]


if __name__ == "__main__":
    main()
