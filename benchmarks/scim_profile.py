"""SCIM requests in process: CPU and SQL statements per request of each operation, through
the real Flask app on a scratch PostgreSQL database (DATABASE_URL's server), optionally with
a cProfile of each. For finding where a request's time goes; for rates against peers see
scim_vs_reference.py.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    python benchmarks/scim_profile.py [get eq value page create patch patchname] \\
        [--users 300] [--requests 200] [--profile 40 --sort tottime]

The CPU is the process's (app and test client), beside its PostgreSQL backends': compare runs
made in the same minutes.
`--wsgi get eq exteq value --users 2000 --requests 2000` measures the reads without the test
client: the WSGI app's CPU, its PostgreSQL backend's, the statements each read sends, and the
bare ceiling's app (benchmarks/bare_scim_app.py) called the same way. Every operation runs
after an ANALYZE of the seeded users (as autovacuum would have run one).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event, make_url, text
from sqlalchemy.engine import Engine
from werkzeug.test import EnvironBuilder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import cpu
from benchmarks.bare_scim_app import create_bare_scim_app
from benchmarks.scim_vs_reference import PATCH_OP, user_body
from benchmarks.scratch import postgres_scratch
from models.actions import mass_change
from models.db import make_engine, make_session_factory
from models.migrate import upgrade
from models.settings import Settings
from tests.support import factories
from webhooks.app import create_app

OPERATIONS = ("get", "eq", "exteq", "value", "page", "create", "patch", "patchname")


def patch_body(path: str, value: Any) -> str:
    return json.dumps(
        {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": path, "value": value}]}
    )


def scim_app(url: str, *, queue: str = "", **overrides: Any) -> tuple[Any, dict[str, str]]:
    """The app on a migrated database with one organisation (its mass-change gate off, as
    in scim_vs_reference.py) and the SCIM token's headers."""
    settings = Settings(
        database_url=url,
        celery_broker_url=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        celery_queue=queue or f"odock-profile-{uuid.uuid4().hex[:6]}",
        secret_key=secrets.token_urlsafe(32),
        log_level="WARNING",
        **overrides,
    )
    engine = make_engine(settings)
    upgrade(engine)
    with make_session_factory(engine)() as session:
        org = factories.make_org(session, "Bench")
        mass_change.set_thresholds(session, organisation=org, actor=factories.SETUP, enabled=False)
        token = factories.scim_token(session, org)
        session.commit()
    engine.dispose()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    return create_app(settings).test_client(), headers


def operations(client: Any, headers: dict[str, str], ids: list[str]) -> dict[str, Any]:
    """Each operation as a function of the request's number."""
    n = len(ids)

    def listing(**query: Any) -> Any:
        return client.get("/scim/v2/Users", query_string=query, headers=headers)

    def email(i: int) -> str:
        return f"user{i % n:06d}@example.com"

    return {
        "get": lambda i: client.get(f"/scim/v2/Users/{ids[i % n]}", headers=headers),
        "eq": lambda i: listing(filter=f'userName eq "{email(i)}"'),
        "exteq": lambda i: listing(filter=f'externalId eq "ext-{i % n:06d}"'),
        "value": lambda i: listing(filter=f'emails[type eq "work" and value eq "{email(i)}"]'),
        "page": lambda i: listing(startIndex=1 + (i * 7) % max(n - 100, 1), count=100),
        "create": lambda i: client.post(
            "/scim/v2/Users", data=json.dumps(user_body(10**6 + i)), headers=headers
        ),
        "patch": lambda i: client.patch(
            f"/scim/v2/Users/{ids[i % n]}", data=patch_body("active", False), headers=headers
        ),
        # Another half of the users: a PATCH without the revocation, for its cost beside.
        "patchname": lambda i: client.patch(
            f"/scim/v2/Users/{ids[(i + n // 2) % n]}",
            data=patch_body("displayName", f"Renamed {i}"),
            headers=headers,
        ),
    }


def measure(name: str, call: Callable[[int], Any], requests: int, args: Any) -> None:
    statements: Counter[str] = Counter()

    execute = psycopg.Cursor.execute

    # Counted at the driver: hot reads run on it without SQLAlchemy's statement events
    # (models.db.driver_read), and a listener on those events would turn that off.
    def count(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        statements[str(query).split(None, 1)[0]] += 1
        return execute(cursor, query, *args, **kwargs)

    for i in range(3):
        call(10**5 + i)  # warm: the token cached, the statements compiled
    if args.statements:
        show_statements(name, lambda: call(10**5 + 3))
    profile = cProfile.Profile(time.process_time)
    psycopg.Cursor.execute = count  # type: ignore[method-assign]
    backends = cpu.cpu_by_pid(cpu.database_pids(args.database))
    started_cpu, started = time.process_time(), time.perf_counter()
    if args.profile:
        profile.enable()
    for i in range(requests):
        answer = call(i)
        if answer.status_code >= 300:
            raise RuntimeError(f"{name}: {answer.status_code} {answer.data[:300]!r}")
    profile.disable()
    cpu_ms = (time.process_time() - started_cpu) / requests * 1000
    wall_ms = (time.perf_counter() - started) / requests * 1000
    db_cpu = cpu.used_between(backends, cpu.cpu_by_pid(cpu.database_pids(args.database)))
    db_ms = db_cpu / requests * 1000
    psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    per_request = ", ".join(f"{kind} {n / requests:.2f}" for kind, n in sorted(statements.items()))
    print(
        f"| {name} | {cpu_ms:.2f} | {db_ms:.2f} | {wall_ms:.2f} | {per_request}"
        f" | {os.getloadavg()[0]:.1f} |",
        flush=True,
    )
    if args.profile:
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out).sort_stats(args.sort)
        stats.print_stats(args.profile)
        if args.callers:
            stats.print_callers(args.callers)
        print(out.getvalue())


def show_statements(name: str, request: Callable[[], Any]) -> None:
    """Print the statements one request sends, in order (for finding round trips to cut)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(" ".join(statement.split())[: int(os.environ.get("STMT_WIDTH", "160"))])

    event.listen(Engine, "before_cursor_execute", record)
    try:
        request()
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    print(f"# {name}: {len(seen)} statements")
    for statement in seen:
        print(f"#   {statement}")


READS = ("get", "eq", "exteq", "value")


def read_environs(headers: dict[str, str], ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """WSGI environs of each read, one per user, built once (no client in the measure)."""
    auth = {"Authorization": headers["Authorization"]}

    def environ(path: str, filter_text: str | None = None) -> dict[str, Any]:
        query = {"filter": filter_text} if filter_text else None
        built: dict[str, Any] = EnvironBuilder(path, headers=auth, query_string=query).get_environ()
        return built

    emails = [f"user{n:06d}@example.com" for n in range(len(ids))]
    return {
        "get": [environ(f"/scim/v2/Users/{scim_id}") for scim_id in ids],
        "eq": [environ("/scim/v2/Users", f'userName eq "{e}"') for e in emails],
        "exteq": [
            environ("/scim/v2/Users", f'externalId eq "ext-{n:06d}"') for n in range(len(ids))
        ],
        "value": [
            environ("/scim/v2/Users", f'emails[type eq "work" and value eq "{e}"]') for e in emails
        ],
    }


def measure_wsgi(
    name: str, app: Any, environs: list[dict[str, Any]], requests: int, db: str, args: Any
) -> None:
    """CPU per request of the WSGI app alone and of its PostgreSQL backends (db; "" none);
    with --profile, a cProfile of the app's calls after the figures."""

    def start_response(status: str, _headers: Any, _exc: Any = None) -> None:
        if not status.startswith("200"):
            raise RuntimeError(f"{name}: {status}")

    def run(count: int) -> None:
        for i in range(count):
            b"".join(app(dict(environs[i % len(environs)]), start_response))

    run(min(requests, 50))  # warm: plans, caches, the token
    backends = cpu.cpu_by_pid(cpu.database_pids(db)) if db else {}
    profile = cProfile.Profile(time.process_time)
    started = time.process_time()
    if args.profile:
        profile.enable()
    run(requests)
    profile.disable()
    app_ms = (time.process_time() - started) / requests * 1000
    db_cpu = cpu.used_between(backends, cpu.cpu_by_pid(cpu.database_pids(db))) if db else 0.0
    db_ms = db_cpu / requests * 1000
    load = os.getloadavg()[0]
    sent = statements_per_request(lambda: run(min(requests, 100))) / min(requests, 100)
    print(
        f"| {name} | {app_ms:.3f} | {db_ms:.3f} | {app_ms + db_ms:.3f} | {sent:.2f} | {load:.1f} |",
        flush=True,
    )
    if args.profile:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(args.sort).print_stats(args.profile)
        print(out.getvalue())


def statements_per_request(requests: Callable[[], None]) -> int:
    """How many statements `requests` send, counted at the driver (psycopg), apart from the
    timed run: hot reads bypass SQLAlchemy's statement events (models.db.driver_read)."""
    sent = 0
    execute = psycopg.Cursor.execute

    def count(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal sent
        sent += 1
        return execute(cursor, query, *args, **kwargs)

    psycopg.Cursor.execute = count  # type: ignore[method-assign]
    try:
        requests()
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    return sent


def wsgi_reads(url: str, client: Any, headers: dict[str, str], ids: list[str], args: Any) -> None:
    """The reads through the WSGI app alone, beside the bare ceiling's app the same way."""
    environs, database = read_environs(headers, ids), make_url(url).database or ""
    bare = create_bare_scim_app()
    print("| operation | app CPU ms/req | database CPU ms/req | together | statements/req | load |")
    print("|---|---:|---:|---:|---:|---:|")
    for _ in range(args.rounds):
        if not args.profile:
            measure_wsgi("bare ceiling (get)", bare, environs["get"], args.requests, "", args)
        for name in args.operations or READS:
            measure_wsgi(name, client.application, environs[name], args.requests, database, args)


def analyse(url: str) -> None:
    """ANALYZE the seeded database, as autovacuum would have within its minute: plans as in
    production. Without statistics a SCIM write's lock and read (`id = $1 AND
    organisation_id = $2`) may take ix_scim_users_org_external_id and filter every user of
    the organisation by id instead of taking the primary key."""
    with make_engine(Settings(database_url=url), isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(text("ANALYZE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("operations", nargs="*", help=f"of {', '.join(OPERATIONS)} (all)")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--requests", type=int, default=200, help="per operation (pages: /10)")
    parser.add_argument("--profile", type=int, default=0, help="print this many profile lines")
    parser.add_argument("--statements", action="store_true", help="print one request's SQL")
    parser.add_argument("--sort", default="cumulative", help="cumulative or tottime")
    parser.add_argument("--callers", help="with --profile: who calls functions matching this")
    parser.add_argument(
        "--wsgi",
        action="store_true",
        help="reads only: the WSGI app's CPU without a client, its database backends' beside,"
        " and the bare ceiling's app the same way",
    )
    parser.add_argument("--rounds", type=int, default=2, help="with --wsgi")
    args = parser.parse_args()
    allowed = READS if args.wsgi else OPERATIONS
    unknown = set(args.operations) - set(allowed)
    if unknown:
        parser.error(f"unknown operations: {', '.join(sorted(unknown))}")
    with postgres_scratch(os.environ.get("DATABASE_URL", "")) as url:
        client, headers = scim_app(url)
        ids = []
        for n in range(args.users):
            made = client.post("/scim/v2/Users", data=json.dumps(user_body(n)), headers=headers)
            ids.append(made.json["id"])
        analyse(url)
        print(f"# {args.users} users; load average {os.getloadavg()[0]:.1f}\n")
        if args.wsgi:
            wsgi_reads(url, client, headers, ids, args)
            return
        print(
            "| operation | CPU ms/req | database CPU ms/req | wall ms/req | statements/req | load |"
        )
        print("|---|---:|---:|---:|---|---:|")
        args.database = make_url(url).database or ""
        calls = operations(client, headers, ids)
        for name in args.operations or OPERATIONS:
            requests = max(args.requests // 10, 1) if name == "page" else args.requests
            if name.startswith("patch"):
                requests = min(requests, args.users // 2)  # each user deactivated once
            measure(name, calls[name], requests, args)


if __name__ == "__main__":
    main()
