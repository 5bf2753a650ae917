"""Export 1,000,000 audit events with `odock-sync audit export`: peak RSS and rate, against an
export of 100,000 from the same table (constant memory means the two peaks match).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
    .venv/bin/python benchmarks/audit_export.py [--rows 1000000] [--small 100000]

It creates (and drops) a database of its own; the export runs as a child process (the real
command line) writing to a temporary file, and its peak RSS is the child's ru_maxrss.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.scratch import postgres_scratch  # noqa: E402
from models.actions import organisations  # noqa: E402
from models.actor import Actor  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402

FILL = """
INSERT INTO audit_events (id, organisation_id, occurred_at, source, actor, actor_user_id,
    action, target_type, target_id, before, after, request_id)
SELECT gen_random_uuid(), :org, TIMESTAMPTZ '2026-01-01 00:00:00+00' + n * INTERVAL '20 ms',
    (ARRAY['scim','ldap','admin','okta','schedule'])[1 + n % 5], 'okta-provisioning', NULL,
    (ARRAY['user.updated','user.revoked','team.member_added','key.revoked'])[1 + n % 4],
    'user', 'u-' || n,
    json_build_object('name', 'Person ' || n, 'email', 'p' || n || '@example.test',
                      'status', 'ACTIVE', 'role', 'USER'),
    json_build_object('name', 'Person ' || n, 'email', 'p' || n || '@example.test',
                      'status', 'REVOKED', 'role', 'USER', 'teams', json_build_array('a', 'b')),
    'req_' || md5(n::text)
FROM generate_series(CAST(:start AS integer), CAST(:stop AS integer)) AS n
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    args = parser.parse_args()

    with postgres_scratch(prefix="odock_bench_audit") as database_url:
        settings = Settings(database_url=database_url, secret_key="bench-" + "k" * 32)
        engine = make_engine(settings)
        upgrade(engine)
        with make_session_factory(engine)() as session:
            org = organisations.create_organisation(
                session, name="Bench", slug="bench", actor=Actor.system("bench")
            )
            session.commit()
            org_id = org.id
        started = time.perf_counter()
        with engine.begin() as connection:
            for start in range(1, args.rows + 1, 100_000):
                stop = min(start + 99_999, args.rows)
                connection.execute(text(FILL), {"org": org_id, "start": start, "stop": stop})
        with engine.begin() as connection:
            connection.execute(text("ANALYZE audit_events"))
        print(f"filled {args.rows:,} events in {time.perf_counter() - started:.1f} s")
        engine.dispose()
        small_until = _moment(args.small * 0.020)
        for label, extra, fmt in (
            (f"{args.small:,} events, jsonl", ["--until", small_until], "jsonl"),
            (f"{args.rows:,} events, jsonl", [], "jsonl"),
            (f"{args.rows:,} events, csv", [], "csv"),
        ):
            _export(database_url, label, extra, fmt)


def _moment(seconds: float) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"2026-01-01T{int(hours):02d}:{int(minutes):02d}:{secs:06.3f}Z"


def _export(database_url: str, label: str, extra: list[str], fmt: str) -> None:
    with tempfile.NamedTemporaryFile(suffix=f".{fmt}") as out:
        command = [
            sys.executable,
            "-c",
            "from cli.main import main; main()",
            "audit",
            "export",
            "--since",
            "2025-12-31T00:00:00Z",
            "--org",
            "bench",
            "--format",
            fmt,
            "-o",
            out.name,
            *extra,
        ]
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "PYTHONPATH": str(ROOT),
            "SECRET_KEY": "bench-" + "k" * 32,
            "LOG_LEVEL": "WARNING",
        }
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        if status != 0:
            raise SystemExit(f"export failed ({status})")
        with open(out.name, "rb") as written:
            lines = sum(1 for _ in written) - (1 if fmt == "csv" else 0)
        size = Path(out.name).stat().st_size
        cpu = usage.ru_utime + usage.ru_stime
        print(
            f"{label}: {lines:,} rows, {size / 1e6:.0f} MB in {elapsed:.1f} s "
            f"= {lines / elapsed:,.0f} rows/s; exporter CPU {cpu:.1f} s; "
            f"peak RSS {usage.ru_maxrss / 1024:.1f} MiB"
        )


if __name__ == "__main__":
    main()
