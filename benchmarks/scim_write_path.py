"""SCIM writes in process: CPU and SQL statements per create and per deactivating PATCH
(`active` false, a revocation), through the WSGI app alone on a scratch PostgreSQL database.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    python benchmarks/scim_write_path.py [--users 2000] [--rounds 4] [--profile 60]

Creates `--users` users, then deactivates them one after another, each operation in
`--rounds` slices, and prints per slice the process's CPU per request (the app and its
after-commit publishing thread; no HTTP client: the requests are WSGI environs built
beforehand), its PostgreSQL backends' CPU and the statements each request sent (counted at
the driver). The machine is shared: compare trees by alternating runs in the same minutes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import make_url, text
from werkzeug.test import EnvironBuilder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import cpu
from benchmarks.scim_profile import patch_body, scim_app
from benchmarks.scim_vs_reference import user_body
from benchmarks.scratch import postgres_scratch
from models.db import make_engine
from models.settings import Settings
from tests.support.broker import remove_queues


class Statements:
    """The statements sent through psycopg while counting, by their first word."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self._execute = psycopg.Cursor.execute

    def __enter__(self) -> Statements:
        execute, kinds = self._execute, self.kinds

        def counted(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            kinds[str(query).split(None, 1)[0].upper()] += 1
            return execute(cursor, query, *args, **kwargs)

        psycopg.Cursor.execute = counted  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *_exc: Any) -> None:
        psycopg.Cursor.execute = self._execute  # type: ignore[method-assign]


def environ(method: str, path: str, body: str, headers: dict[str, str]) -> dict[str, Any]:
    built: dict[str, Any] = EnvironBuilder(
        path, method=method, data=body, headers=list(headers.items())
    ).get_environ()
    return built


def run_slice(
    app: Any, environs: list[dict[str, Any]], database: str, profile: Any = None
) -> tuple[dict[str, Any], list[bytes]]:
    """CPU ms per request of this process and of the database's backends, statements sent;
    and the answers' bodies."""
    statuses: list[str] = []
    bodies: list[bytes] = []

    def start_response(status: str, _headers: Any, _exc: Any = None) -> None:
        statuses.append(status)

    backends = cpu.cpu_by_pid(cpu.database_pids(database))
    with Statements() as statements:
        started = time.process_time()
        if profile is not None:
            profile.enable()
        for one in environs:
            bodies.append(b"".join(app(one, start_response)))
        if profile is not None:
            profile.disable()
        app_cpu = time.process_time() - started
    db_cpu = cpu.used_between(backends, cpu.cpu_by_pid(cpu.database_pids(database)))
    bad = [status for status in statuses if not status.startswith("2")]
    if bad:
        raise RuntimeError(f"{len(bad)} answers were not 2xx: {bad[:3]} {bodies[0][:300]!r}")
    n = len(environs)
    kinds = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(statements.kinds.items()))
    figures = {
        "app": app_cpu / n * 1000,
        "db": db_cpu / n * 1000,
        "statements": sum(statements.kinds.values()) / n,
        "kinds": kinds,
    }
    return figures, bodies


def slices(items: list[Any], rounds: int) -> list[list[Any]]:
    size = len(items) // rounds
    return [items[i * size : (i + 1) * size] for i in range(rounds)]


def report(name: str, figures: list[dict[str, Any]]) -> None:
    for n, f in enumerate(figures, 1):
        print(
            f"| {name} {n} | {f['app']:.3f} | {f['db']:.3f} | {f['statements']:.2f}"
            f" ({f['kinds']}) | {os.getloadavg()[0]:.1f} |"
        )
    apps = [f["app"] for f in figures]
    print(
        f"| **{name}, median** | **{statistics.median(apps):.3f}** (min {min(apps):.3f})"
        f" | {statistics.median(f['db'] for f in figures):.3f} | | |",
        flush=True,
    )


def measure(url: str, queue: str, args: argparse.Namespace) -> None:
    # --inline-publish: the after-commit publish in the request's thread, so that a profile
    # shows it (in its thread, its CPU falls on whatever call released the GIL).
    client, headers = scim_app(
        url, queue=queue, outbox_publish_in_background=not args.inline_publish
    )
    app, database = client.application, make_url(url).database or ""
    warm, rounds = args.warm, args.rounds
    creates = [
        environ("POST", "/scim/v2/Users", json.dumps(user_body(n)), headers)
        for n in range(args.users + warm)
    ]
    created = [
        run_slice(app, part, database) for part in [creates[:warm], *slices(creates[warm:], rounds)]
    ]
    ids = [json.loads(body)["id"] for _, bodies in created for body in bodies]
    with make_engine(Settings(database_url=url), isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(text("ANALYZE"))  # as autovacuum would have after 2,000 inserts
    body = patch_body("active", False)
    patches = [environ("PATCH", f"/scim/v2/Users/{scim_id}", body, headers) for scim_id in ids]
    run_slice(app, patches[:warm], database)
    profile = cProfile.Profile(time.process_time) if args.profile else None
    patched = [
        run_slice(app, part, database, profile)[0] for part in slices(patches[warm:], rounds)
    ]
    print(f"# {args.users} users, load average {os.getloadavg()[0]:.1f}\n")
    print("| slice | CPU ms/request | database CPU ms/request | statements/request | load |")
    print("|---|---:|---:|---|---:|")
    report("create", [figures for figures, _ in created[1:]])
    report("PATCH active=false", patched)
    if profile is not None:
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        if args.profile_out:
            stats.dump_stats(args.profile_out)
        stats.sort_stats(args.sort).print_stats(args.profile)
        print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warm", type=int, default=20, help="requests of each, unmeasured")
    parser.add_argument("--profile", type=int, default=0, help="cProfile lines of the PATCHes")
    parser.add_argument("--inline-publish", action="store_true")
    parser.add_argument("--profile-out", help="with --profile: also write it to this file")
    parser.add_argument("--sort", default="tottime", help="tottime or cumulative")
    args = parser.parse_args()
    with postgres_scratch(os.environ.get("DATABASE_URL", ""), prefix="scim_write_path") as url:
        queue = f"odock-write-path-{uuid.uuid4().hex[:6]}"
        try:
            measure(url, queue, args)
        finally:
            remove_queues(os.environ.get("CELERY_BROKER_URL", ""), queue)


if __name__ == "__main__":
    main()
