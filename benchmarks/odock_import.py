"""Import and reconcile of Odock keys at scale on PostgreSQL: `odock-sync odock import` of a
JSONL file into an empty organisation, then the reconcile against a loopback management plane
whose listing differs by 1% new, 1% changed and 1% gone keys. Each phase runs in a fresh
process, so its peak RSS and CPU time are its own (PostgreSQL's CPU is not in the latter; on
this shared 2-core machine the wall time depends on the load, printed with the figures).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
    .venv/bin/python benchmarks/odock_import.py [--keys 100000 1000000]

It creates (and drops) a database of its own; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.actions import organisations, teams  # noqa: E402
from models.actions import users as user_actions  # noqa: E402
from models.actor import Actor  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.entities import VirtualApiKey  # noqa: E402
from models.enums import Role  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402

SETUP = Actor.system("benchmark")
PEOPLE = 1000
PAGE = 1000
KEY_BASE = 0x0193_0000_0000_7000_8000_0000_0000_0000


def key_id(index: int) -> str:
    return str(uuid.UUID(int=KEY_BASE + index))


def key(index: int, people: list[str], version: int = 1) -> dict[str, Any]:
    return {
        "id": key_id(index),
        "type": "USER",
        "name": f"key {index}",
        "masked_value": f"sk-...{index % 10000:04d}",
        "owner_user_id": people[index % len(people)],
        "created_by_user_id": people[(index + 1) % len(people)],
        "created_at": "2026-11-01T10:00:00Z",
        "expires_at": None,
        "revoked": index % 50 == 0,
        "revoked_at": "2026-11-20T10:00:00Z" if index % 50 == 0 else None,
        "version": version,
    }


def listed_key(index: int, keys: int, people: list[str]) -> dict[str, Any] | None:
    """The management plane's view: 1% changed, 1% gone, and 1% new beyond `keys`."""
    if index < keys and index % 100 == 2:
        return None
    return key(index, people, version=2 if index % 100 == 1 else 1)


# --- phases, each in a process of its own -----------------------------------------------------


def run_import(settings: Settings, organisation_id: str, path: str) -> dict[str, Any]:
    from models.actions import odock_reconcile

    engine = make_engine(settings)
    started = time.perf_counter()
    with open(path, "rb") as lines:
        run = odock_reconcile.import_lines(
            engine, organisation_id=uuid.UUID(organisation_id), lines=lines
        )
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "summary": run.summary["key"], "db_cpu": backend_cpu(engine)}


def backend_cpu(engine: Any) -> float:
    """CPU seconds of the PostgreSQL backends on the benchmark's database, which are this
    phase's (the parent holds none meanwhile), read from /proc: PostgreSQL runs here."""
    with engine.connect() as connection:
        pids = connection.scalars(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).all()
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def run_reconcile(settings: Settings, organisation_id: str) -> dict[str, Any]:
    from models.actions import odock_reconcile

    engine = make_engine(settings)
    started = time.perf_counter()
    run = odock_reconcile.reconcile_from_management_plane(
        engine, settings, uuid.UUID(organisation_id)
    )
    return {
        "seconds": time.perf_counter() - started,
        "status": run.status,
        "summary": run.summary["key"],
        "db_cpu": backend_cpu(engine),
    }


def in_own_process(target: Any, *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_measured, args=(results, target, *args))
    process.start()
    result = results.get()
    process.join()
    return result


def _measured(results: Any, target: Any, *args: Any) -> None:
    result = target(*args)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    results.put(result)


# --- the loopback management plane ---------------------------------------------------------


def serve_listing(keys: int, people: list[str]) -> ThreadingHTTPServer:
    total = keys + keys // 100

    class Listing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            start = int(query.get("cursor", ["0"])[0])
            limit = min(int(query.get("limit", [str(PAGE)])[0]), PAGE)
            items: list[dict[str, Any]] = []
            if url.path.endswith("/keys"):
                end = min(start + limit, total)
                found = (listed_key(i, keys, people) for i in range(start, end))
                items = [item for item in found if item is not None]
                cursor = str(end) if end < total else None
            else:
                cursor = None
            body = json.dumps({"items": items, "next_cursor": cursor}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Listing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    admin_url = make_url(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test").replace(
            "postgresql://", "postgresql+psycopg://", 1
        )
    )
    for keys in args.keys:
        measure(admin_url, keys)


def measure(admin_url: Any, keys: int) -> None:
    name = f"odock_bench_bridge_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        database_url = admin_url.set(database=name).render_as_string(hide_password=False)
        settings = Settings(database_url=database_url, secret_key="benchmark-" + "0" * 32)
        engine = make_engine(settings)
        upgrade(engine)
        organisation_id, people = _organisation(engine)
        engine.dispose()  # the phases' backends are then the only ones on this database
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as file:
            for index in range(keys):
                file.write(json.dumps({"kind": "key", **key(index, people)}) + "\n")
        size_mb = os.path.getsize(file.name) / 1e6
        imported = in_own_process(run_import, settings, organisation_id, file.name)
        os.unlink(file.name)
        server = serve_listing(keys, people)
        bridged = settings.model_copy(
            update={
                "odock_mode": "bridged",
                "odock_management_url": f"http://127.0.0.1:{server.server_port}",
                "odock_management_token": "benchmark",
                "odock_timeout": 30.0,
            }
        )
        reconciled = in_own_process(run_reconcile, bridged, organisation_id)
        steady = in_own_process(run_reconcile, bridged, organisation_id)
        server.shutdown()
        with engine.connect() as connection:
            held = connection.scalar(select(func.count()).select_from(VirtualApiKey))
        engine.dispose()
        report(keys, size_mb, imported, reconciled, steady, held)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _organisation(engine: Any) -> tuple[str, list[str]]:
    sessions = make_session_factory(engine)
    with sessions() as session:
        organisation = organisations.create_organisation(
            session, name="Bench", slug="bench", actor=SETUP
        )
        teams.create_team(session, organisation=organisation, name="Platform", actor=SETUP)
        people = [
            str(
                user_actions.create_user(
                    session,
                    organisation=organisation,
                    email=f"person{n}@bench.test",
                    name=f"Person {n}",
                    role=Role.USER,
                    actor=SETUP,
                ).id
            )
            for n in range(PEOPLE)
        ]
        session.commit()
        return str(organisation.id), people


def report(
    keys: int,
    size_mb: float,
    imported: dict[str, Any],
    reconciled: dict[str, Any],
    steady: dict[str, Any],
    held: int,
) -> None:
    load = os.getloadavg()[0]
    print(f"\n{keys:,} keys ({size_mb:.0f} MB of JSONL), {PEOPLE} owners, load average {load:.1f}")
    for label, phase in (
        ("import into an empty organisation", imported),
        ("reconcile, 3% drift", reconciled),
        ("reconcile, no drift", steady),
    ):
        counts = phase["summary"]
        print(
            f"  {label:34} {phase['seconds']:7.2f} s  CPU: ours {phase['cpu_seconds']:5.1f} s, "
            f"PostgreSQL {phase['db_cpu']:5.1f} s  peak RSS {phase['peak_rss_mb']:4.0f} MB  "
            f"created {counts['created']:,} updated {counts['updated']:,} "
            f"deleted {counts['deleted']:,} unchanged {counts['unchanged']:,} "
            f"rejected {counts['rejected']:,}"
        )
    print(f"  keys held afterwards: {held:,}; first reconcile {reconciled['status']}")


if __name__ == "__main__":
    main()
