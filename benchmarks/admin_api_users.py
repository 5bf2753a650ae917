"""Benchmark: the admin API's user list and user detail at 1,000 and 100,000 users.

On PostgreSQL (a scratch database of its own), one organisation is seeded with COPY: users
with teams, a key each, budgets, quotas and usage rows. gunicorn serves the real app on
loopback; one client sends a bounded number of sequential requests per scenario and the
script prints p50/p99 per scenario and size, and the 100k/1k ratio. The sizes are served
side by side and measured request by request in turn, so that the load of a shared machine
falls on both alike and the ratio stays meaningful.

    python benchmarks/admin_api_users.py [--sizes 1000 100000] [--requests 300]
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres (the server to use)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.actions import organisations, tokens  # noqa: E402
from models.actions import users as user_actions  # noqa: E402
from models.actor import Actor  # noqa: E402
from models.base import new_id  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.enums import Role, Source, TokenScope  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402

SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEAMS = 50
USAGE_PER_USER = 5
SETUP = Actor(Source.SYSTEM, "benchmark")


@dataclass
class Seeded:
    token: str
    team_id: str
    deep_cursor: str
    detail_ids: list[str]
    search: str


def scratch_database(name: str) -> str:
    url = make_url(SERVER.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    url = make_url(SERVER.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed(settings: Settings, size: int) -> Seeded:
    engine = make_engine(settings)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions() as session:
        org = organisations.create_organisation(session, name="Bench", slug="bench", actor=SETUP)
        admin = user_actions.create_user(
            session,
            organisation=org,
            email="admin@bench.test",
            name="Bench Admin",
            role=Role.ORG_ADMIN,
            actor=SETUP,
        )
        token = tokens.create_token(
            session, organisation=org, scope=TokenScope.ADMIN, user=admin, actor=SETUP
        ).secret
        session.commit()
        org_id = org.id
    engine.dispose()
    user_ids = bulk_insert(settings, org_id, size)
    with psycopg.connect(
        settings.database_url.replace("+psycopg", ""), autocommit=True
    ) as connection:
        # Steady state, as autovacuum keeps it: statistics fresh, GIN pending lists merged.
        connection.execute("VACUUM ANALYZE")
        team_id = connection.execute(
            "SELECT id FROM teams ORDER BY name_key LIMIT 1 OFFSET 7"
        ).fetchone()[0]  # type: ignore[index]
    ordered = sorted(user_ids)
    rng = random.Random(size)
    return Seeded(
        token=token,
        team_id=str(team_id),
        deep_cursor=str(ordered[int(len(ordered) * 0.9)]),
        detail_ids=[str(rng.choice(user_ids)) for _ in range(500)],
        search="ser0424",  # a few emails match (user004240..9, user104240..)
    )


def bulk_insert(settings: Settings, org_id: uuid.UUID, size: int) -> list[uuid.UUID]:
    """COPY the bulk rows: users, memberships, keys, budgets, quotas, usage."""
    now = datetime.now(UTC)
    rng = random.Random(42)
    team_ids = [new_id() for _ in range(TEAMS)]
    user_ids = [new_id() for _ in range(size)]
    key_ids = [new_id() for _ in range(size)]
    with psycopg.connect(settings.database_url.replace("+psycopg", "")) as connection:
        cursor = connection.cursor()
        with cursor.copy(
            "COPY teams (id, organisation_id, name, name_key, created_at, updated_at) FROM STDIN"
        ) as copy:
            for n, team_id in enumerate(team_ids):
                copy.write_row((team_id, org_id, f"Team {n:02d}", f"team {n:02d}", now, now))
        with cursor.copy(
            "COPY users (id, organisation_id, name, email, email_key, role, status,"
            " created_at, updated_at) FROM STDIN"
        ) as copy:
            for n, user_id in enumerate(user_ids):
                role = "MANAGER" if n % 20 == 0 else "ORG_ADMIN" if n % 97 == 0 else "USER"
                status = "PENDING" if n % 10 == 3 else "REVOKED" if n % 20 == 7 else "ACTIVE"
                email = f"user{n:06d}@bench.test"
                name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
                copy.write_row((user_id, org_id, name, email, email, role, status, now, now))
        with cursor.copy(
            "COPY team_memberships (team_id, user_id, role, source, created_at) FROM STDIN"
        ) as copy:
            for n, user_id in enumerate(user_ids):
                role = "MANAGER" if n % 20 == 0 else "MEMBER"
                copy.write_row((team_ids[n % TEAMS], user_id, role, "admin", now))
        with cursor.copy(
            "COPY virtual_api_keys (id, organisation_id, key_type, owner_user_id, name,"
            " masked_value, revoked, created_at, updated_at) FROM STDIN"
        ) as copy:
            for key_id, user_id in zip(key_ids, user_ids, strict=True):
                copy.write_row(
                    (key_id, org_id, "USER", user_id, "laptop", "sk-...abcd", False, now, now)
                )
        budget_and_quota = (
            ("budgets", 'amount, currency, "window"', (100, "USD", "monthly")),
            ("quotas", 'metric, "limit", "window"', ("requests", 1000, "daily")),
        )
        for table, columns, values in budget_and_quota:
            with cursor.copy(
                f"COPY {table} (id, organisation_id, owner_type, owner_id, name, {columns},"
                " created_at, updated_at) FROM STDIN"
            ) as copy:
                for user_id in user_ids[::10]:
                    copy.write_row(
                        (new_id(), org_id, "USER", user_id, "monthly", *values, now, now)
                    )
        with cursor.copy(
            "COPY usage_records (id, organisation_id, api_key_id, user_id, team_id, occurred_at,"
            " model, cost, input_tokens, output_tokens) FROM STDIN"
        ) as copy:
            for n, (user_id, key_id) in enumerate(zip(user_ids, key_ids, strict=True)):
                for day in range(USAGE_PER_USER):
                    copy.write_row(
                        (
                            new_id(),
                            org_id,
                            key_id,
                            user_id,
                            team_ids[n % TEAMS],
                            now - timedelta(days=day * 3),
                            "gpt-test",
                            "0.01",
                            1000,
                            200,
                        )
                    )
        connection.commit()
    return user_ids


FIRST = ["Ada", "Grace", "Alan", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances"]
LAST = ["Lovelace", "Hopper", "Turing", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie"]


def start_web(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}
    for name, value in settings.model_dump().items():
        env[name.upper()] = str(value)
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "webhooks.app:create_app()",
    ]
    process = subprocess.Popen(
        command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(log.read_text())


def summarise(timings: list[float]) -> dict[str, float]:
    timings = sorted(timings)
    return {
        "p50": statistics.median(timings),
        "p99": timings[min(len(timings) - 1, int(len(timings) * 0.99))],
        "requests": len(timings),
    }


def measure_interleaved(targets: dict[int, tuple[str, Seeded]], count: int) -> dict[int, Any]:
    """Alternate the sizes request by request, so a load change on the machine hits both."""
    sessions = {}
    for size, (_base, seeded) in targets.items():
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {seeded.token}"
        sessions[size] = http
    results: dict[int, dict[str, dict[str, float]]] = {size: {} for size in targets}
    labels = list(scenarios(next(iter(targets.values()))[1]))
    for label in labels:
        paths = {size: scenarios(seeded)[label] for size, (_b, seeded) in targets.items()}
        timings: dict[int, list[float]] = {size: [] for size in targets}
        for n in range(20 + count):  # the first 20 warm up connections, caches and plans
            for size, (base, _seeded) in targets.items():
                path = paths[size][n % len(paths[size])]
                started = time.perf_counter()
                response = sessions[size].get(base + path, timeout=10)
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                if n >= 20:
                    timings[size].append(elapsed)
        for size in targets:
            results[size][label] = summarise(timings[size])
    return results


def scenarios(seeded: Seeded) -> dict[str, list[str]]:
    return {
        "list: first page": ["/api/v1/users?limit=50"],
        "list: status+role": ["/api/v1/users?status=PENDING&role=USER&limit=50"],
        "list: team": [f"/api/v1/users?team_id={seeded.team_id}&limit=50"],
        "list: deep cursor": [f"/api/v1/users?cursor={seeded.deep_cursor}&limit=50"],
        "list: search": [f"/api/v1/users?q={seeded.search}&limit=50"],
        "list: search name": ["/api/v1/users?q=hopper&limit=50"],
        "user detail": [f"/api/v1/users/{uid}" for uid in seeded.detail_ids],
    }


def run(sizes: list[int], count: int, port: int) -> dict[int, Any]:
    """Seed every size in its own database, serve each, then measure them side by side."""
    webs, targets = [], {}
    try:
        for offset, size in enumerate(sizes):
            url = scratch_database(f"odock_bench_{size}")
            settings = Settings(
                database_url=url,
                secret_key="bench-secret-key-0123456789abcdef",
                log_level="WARNING",
            )
            started = time.perf_counter()
            seeded = seed(settings, size)
            print(f"seeded {size:,} users in {time.perf_counter() - started:.1f}s", flush=True)
            log = Path(f"/tmp/odock-bench-web-{size}.log")
            webs.append(start_web(settings, port + offset, log))
            targets[size] = (f"http://127.0.0.1:{port + offset}", seeded)
        return measure_interleaved(targets, count)
    finally:
        for web in webs:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(timeout=30)
        for size in sizes:
            drop_database(f"odock_bench_{size}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--port", type=int, default=18931)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/admin_api.json")
    args = parser.parse_args()
    results = run(args.sizes, args.requests, args.port)
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2))


def print_table(results: dict[int, dict[str, dict[str, float]]]) -> None:
    sizes = sorted(results)
    low, high = sizes[0], sizes[-1]
    header = "| scenario | " + " | ".join(f"{s:,} p50 / p99 (ms)" for s in sizes)
    header += f" | p99 ratio {high:,}/{low:,} |" if len(sizes) > 1 else " |"
    print(header)
    print("|" + "---|" * (len(sizes) + 1 + (len(sizes) > 1)))
    for label in results[low]:
        cells = [f"{results[s][label]['p50']:.1f} / {results[s][label]['p99']:.1f}" for s in sizes]
        row = f"| {label} | " + " | ".join(cells)
        if len(sizes) > 1:
            row += f" | {results[high][label]['p99'] / results[low][label]['p99']:.2f}x"
        print(row + " |")


if __name__ == "__main__":
    main()
