"""odock-sync's SCIM server against the reference server scim2-server, same client, loopback.

Starts odock-sync (gunicorn, PostgreSQL) and scim2-server (in memory), drives both with the
same concurrent client, in alternating slices of each operation, and prints requests per
second side by side with their ratio. Beside the reference's get it measures the ceiling: a
bare Flask app (benchmarks/bare_scim_app.py, no database) under the same gunicorn settings.
Then seeds odock-sync's database in bulk to 100,000 users and compares the `userName eq`
filter's p99 latency with its p99 at 1,000 users.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 python benchmarks/scim_vs_reference.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.actions import mass_change  # noqa: E402
from models.base import new_id, utcnow  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.entities import IdentityLink, ScimEmail, ScimUser, User  # noqa: E402
from models.enums import Role, Source, UserStatus  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402
from tests.support import factories  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, token: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(url, headers=auth(token), timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}


@dataclass
class Server:
    name: str
    base: str
    token: str


@dataclass(frozen=True)
class Serving:
    """gunicorn settings, the same for odock-sync and the bare ceiling."""

    workers: int
    threads: int
    worker_class: str

    def describe(self) -> str:
        return f"{self.workers} {self.worker_class} workers x {self.threads} threads"


def gunicorn(serving: Serving, app: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            *("--worker-class", serving.worker_class),
            *("--workers", str(serving.workers)),
            *("--threads", str(serving.threads)),
            *("--bind", f"127.0.0.1:{port}"),
            app,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextmanager
def database(url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped afterwards."""
    server = make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"odock_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def odock_sync(db_url: str, broker: str, serving: Serving) -> Iterator[tuple[Server, Any, Any]]:
    settings = Settings(
        database_url=db_url,
        celery_broker_url=broker,
        celery_queue=f"odock-bench-{uuid.uuid4().hex[:6]}",
        secret_key=secrets.token_urlsafe(32),
        log_level="WARNING",
    )
    engine = make_engine(settings)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions() as session:
        org = factories.make_org(session, "Bench")
        # Deactivations by the hundred on purpose: the mass-change gate would hold them.
        mass_change.set_thresholds(session, organisation=org, actor=factories.SETUP, enabled=False)
        token = factories.scim_token(session, org)
        session.commit()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": broker,
        "CELERY_QUEUE": settings.celery_queue,
        "SECRET_KEY": settings.secret_key,
        "LOG_LEVEL": "WARNING",
    }
    process = gunicorn(serving, "webhooks.app:create_app()", port, env)
    try:
        server = Server("odock-sync", f"http://127.0.0.1:{port}/scim/v2", token)
        wait_up(server.base + "/ServiceProviderConfig", token)
        yield server, engine, org
    finally:
        process.terminate()
        process.wait(10)
        engine.dispose()


@contextmanager
def ceiling(serving: Serving) -> Iterator[Server]:
    """The bare Flask app (benchmarks/bare_scim_app.py) under the same gunicorn settings."""
    port = free_port()
    app = "benchmarks.bare_scim_app:create_bare_scim_app()"
    process = gunicorn(serving, app, port, dict(os.environ))
    try:
        server = Server("bare Flask", f"http://127.0.0.1:{port}/scim/v2", "bare")
        wait_up(server.base + "/ServiceProviderConfig", server.token)
        yield server
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def reference() -> Iterator[Server]:
    """scim2-server's own command, with a listen backlog of 128 instead of socketserver's 5.

    It speaks HTTP/1.0 (a connection per request); with a backlog of 5, eight client threads
    overflowed its accept queue and a few connects waited a second for a SYN retransmit,
    which cost the reference up to half its rate. gunicorn's backlog is 2048.
    """
    port, token = free_port(), secrets.token_urlsafe(16)
    launch = (
        "import socketserver, sys; socketserver.TCPServer.request_queue_size = 128;"
        " from scim2_server.testserver.cli import main; sys.exit(main())"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", launch, "--port", str(port), "--bearer-token", token],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server = Server("scim2-server", f"http://127.0.0.1:{port}", token)
        wait_up(server.base + "/ServiceProviderConfig", token)
        yield server
    finally:
        process.terminate()
        process.wait(10)


# --- the client --------------------------------------------------------------------------


@dataclass
class Result:
    count: int
    seconds: float
    latencies: list[float]
    client_cpu: float = 0.0  # CPU seconds the client process itself spent

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def client_ms(self) -> float:
        return self.client_cpu / self.count * 1000

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def drive(
    server: Server, calls: list[Callable[[requests.Session], requests.Response]], threads: int
) -> Result:
    """Run calls on `threads` keep-alive connections; every answer must be a success."""
    local: dict[int, requests.Session] = {}
    latencies: list[float] = []

    def run(call: Callable[[requests.Session], requests.Response]) -> None:
        import threading

        session = local.setdefault(threading.get_ident(), requests.Session())
        session.headers.update(auth(server.token))
        started = time.perf_counter()
        response = call(session)
        latencies.append(time.perf_counter() - started)
        if response.status_code >= 300:
            raise RuntimeError(f"{server.name}: {response.status_code} {response.text[:300]}")

    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, calls))
    elapsed = time.perf_counter() - started
    return Result(len(calls), elapsed, latencies, time.process_time() - cpu)


def user_body(n: int) -> dict[str, Any]:
    email = f"user{n:06d}@example.com"
    return {
        "schemas": [USER],
        "userName": email,
        "externalId": f"ext-{n:06d}",
        "name": {"givenName": f"Given{n}", "familyName": f"Family{n}"},
        "displayName": f"User {n}",
        "emails": [{"value": email, "type": "work", "primary": True}],
        "active": True,
    }


Calls = list[Callable[[requests.Session], requests.Response]]


class Workload:
    """The same operations, in the same order, against one server (each a list of calls)."""

    def __init__(self, server: Server, users: int) -> None:
        self.server, self.users = server, users
        self.ids: dict[int, str] = {}

    def create(self) -> Calls:
        base = self.server.base

        def one(n: int) -> Callable[[requests.Session], requests.Response]:
            def call(s: requests.Session) -> requests.Response:
                response = s.post(f"{base}/Users", data=json.dumps(user_body(n)))
                self.ids[n] = response.json().get("id", "")
                return response

            return call

        return [one(n) for n in range(self.users)]

    def get(self, picks: list[int]) -> Calls:
        base = self.server.base
        return [lambda s, n=n: s.get(f"{base}/Users/{self.ids[n]}") for n in picks]

    def filtered(self, picks: list[int], expression: Callable[[int], str]) -> Calls:
        base, name = self.server.base, self.server.name

        def one(n: int) -> Callable[[requests.Session], requests.Response]:
            def call(s: requests.Session) -> requests.Response:
                response = s.get(f"{base}/Users", params={"filter": expression(n)})
                if response.json().get("totalResults") != 1:
                    raise RuntimeError(f"{name}: {expression(n)} found {response.text[:200]}")
                return response

            return call

        return [one(n) for n in picks]

    def pages(self, starts: list[int]) -> Calls:
        base = self.server.base
        return [
            lambda s, start=start: s.get(
                f"{base}/Users", params={"startIndex": start, "count": 100}
            )
            for start in starts
        ]

    def deactivate(self, targets: list[int]) -> Calls:
        base = self.server.base
        body = json.dumps(
            {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "active", "value": False}],
            }
        )
        return [lambda s, n=n: s.patch(f"{base}/Users/{self.ids[n]}", data=body) for n in targets]


CEILING = "ceiling: bare Flask get, no database"
ROUNDS = 5


def side_by_side(
    one: Workload, other: Workload, step: Callable[[Workload], Calls], threads: int
) -> tuple[Result, Result]:
    """The step on both servers in alternating slices (one, other, one, other...), so a
    change in the shared machine's load during the step falls on both alike."""
    mine, theirs = step(one), step(other)
    slices: tuple[list[Result], list[Result]] = ([], [])
    for index in range(ROUNDS):
        for side, (workload, calls) in enumerate(((one, mine), (other, theirs))):
            part = calls[len(calls) * index // ROUNDS : len(calls) * (index + 1) // ROUNDS]
            slices[side].append(drive(workload.server, part, threads))
    return merged(slices[0]), merged(slices[1])


def merged(parts: list[Result]) -> Result:
    return Result(
        sum(r.count for r in parts),
        sum(r.seconds for r in parts),
        [latency for r in parts for latency in r.latencies],
        sum(r.client_cpu for r in parts),
    )


def compare(
    ours: Server, theirs: Server, bare: Server, users: int, samples: int, threads: int
) -> dict[str, tuple[Result, Result]]:
    """Each operation on both servers side by side; after `get by id`, the bare Flask
    ceiling beside the reference's get, the same way."""
    mine, ref = Workload(ours, users), Workload(theirs, users)
    ceiling = Workload(bare, users)
    ceiling.ids = mine.ids
    picks = [random.randrange(users) for _ in range(samples)]
    starts = [random.randrange(max(users - 100, 1)) + 1 for _ in range(max(samples // 5, 10))]
    targets = random.sample(range(users), min(samples, users))
    steps: dict[str, Callable[[Workload], Calls]] = {
        "create user": lambda w: w.create(),
        "get by id": lambda w: w.get(picks),
        "userName eq": lambda w: w.filtered(
            picks, lambda n: f'userName eq "user{n:06d}@example.com"'
        ),
        "externalId eq": lambda w: w.filtered(picks, lambda n: f'externalId eq "ext-{n:06d}"'),
        "emails[type eq work and value eq]": lambda w: w.filtered(
            picks, lambda n: f'emails[type eq "work" and value eq "user{n:06d}@example.com"]'
        ),
        "page of 100": lambda w: w.pages(starts),
        "PATCH active": lambda w: w.deactivate(targets),
    }
    results = {}
    for name, step in steps.items():
        results[name] = side_by_side(mine, ref, step, threads)
        progress(name, results[name])
        if name == "get by id":
            results[CEILING] = side_by_side(ceiling, ref, steps["get by id"], threads)
            progress(CEILING, results[CEILING])
    return results


def progress(name: str, pair: tuple[Result, Result]) -> None:
    print(f"  {name}: {pair[0].rate:,.0f} vs {pair[1].rate:,.0f} req/s", flush=True)


def verdict(results: dict[str, tuple[Result, Result]]) -> str:
    """Whether 3x the reference is within reach of any Flask service under these settings."""
    bare, ref = results[CEILING]
    ratio = bare.rate / ref.rate
    reach = "within reach" if ratio >= 3 else "out of reach for any Flask service here"
    client_cores = 3 * ref.rate * bare.client_ms / 1000
    return (
        f"ceiling: a bare Flask get answers {bare.rate:,.0f} req/s, {ratio:.1f}x the"
        f" reference's {ref.rate:,.0f}; 3x the reference on single-row operations is {reach}"
        " under these gunicorn settings and this client.\n"
        f"The client itself spends {bare.client_ms:.2f} ms of CPU per request: at 3x the"
        f" reference's rate it alone would keep {client_cores:.1f} of the"
        f" {os.cpu_count()} CPUs busy."
    )


# --- 100,000 users -------------------------------------------------------------------------


def seed(engine: Any, org: Any, start: int, stop: int, chunk: int = 5000) -> None:
    """Insert SCIM users straight into the tables, as provisioning would have left them."""
    for low in range(start, stop, chunk):
        now = utcnow()
        users, links, scim_users, emails = [], [], [], []
        for n in range(low, min(low + chunk, stop)):
            user_id, scim_id = new_id(), new_id()
            email = f"seed{n:06d}@example.com"
            users.append(
                {
                    "id": user_id,
                    "organisation_id": org.id,
                    "name": f"Seed {n}",
                    "email": email,
                    "email_key": email,
                    "role": Role.USER,
                    "status": UserStatus.ACTIVE,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            links.append(
                {
                    "id": new_id(),
                    "organisation_id": org.id,
                    "user_id": user_id,
                    "source": Source.SCIM,
                    "external_id": str(scim_id),
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
            )
            scim_users.append(
                {
                    "id": scim_id,
                    "organisation_id": org.id,
                    "user_id": user_id,
                    "user_name": email,
                    "user_name_key": email,
                    "external_id": f"seed-{n:06d}",
                    "given_name": "Seed",
                    "family_name": str(n),
                    "extra": {},
                    "created_at": now,
                    "updated_at": now,
                }
            )
            emails.append(
                {
                    "id": new_id(),
                    "organisation_id": org.id,
                    "scim_user_id": scim_id,
                    "position": 0,
                    "value": email,
                    "value_key": email,
                    "type": "work",
                    "primary": True,
                }
            )
        with engine.begin() as connection:
            connection.execute(insert(User), users)
            connection.execute(insert(IdentityLink), links)
            connection.execute(insert(ScimUser), scim_users)
            connection.execute(insert(ScimEmail), emails)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))


def eq_latency(server: Server, total: int, samples: int) -> Result:
    """Sequential `userName eq` lookups of random seeded users (latency, not throughput)."""
    picks = [random.randrange(total) for _ in range(samples)]
    calls = [
        (
            lambda s, n=n: s.get(
                f"{server.base}/Users", params={"filter": f'userName eq "seed{n:06d}@example.com"'}
            )
        )
        for n in picks
    ]
    drive(server, calls[: samples // 10], 1)  # warm up
    return drive(server, calls, 1)


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) * 2)
    parser.add_argument("--server-threads", type=int, default=4, help="gunicorn --threads")
    parser.add_argument("--worker-class", default="gthread", choices=["gthread", "sync"])
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    db = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    random.seed(7)
    threads = 1 if args.worker_class == "sync" else args.server_threads
    serving = Serving(args.workers, threads, args.worker_class)
    print(
        f"# {os.cpu_count()} CPUs; client: {args.threads} threads;"
        f" gunicorn: {serving.describe()};"
        f" load average at start: {os.getloadavg()[0]:.1f}"
    )
    with database(db) as url, odock_sync(url, broker, serving) as (ours, engine, org):
        with reference() as ref, ceiling(serving) as bare:
            results = compare(ours, ref, bare, args.users, args.samples, args.threads)
        print(f"\n## {args.users} users: requests per second (higher is better)\n")
        print(
            "| operation | odock-sync req/s | scim2-server req/s | ratio"
            " | odock-sync p50 / p99 ms | scim2-server p50 / p99 ms |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for name, (result, other) in results.items():
            print(
                f"| {name} | {result.rate:,.0f} | {other.rate:,.0f}"
                f" | {result.rate / other.rate:.1f}x"
                f" | {result.p(0.5):.1f} / {result.p(0.99):.1f}"
                f" | {other.p(0.5):.1f} / {other.p(0.99):.1f} |"
            )
        print(f"\n{verdict(results)}")
        print(f"\nload average after the comparison: {os.getloadavg()[0]:.1f}")
        if args.skip_big:
            return
        print("\n## userName eq at scale (one client, sequential)\n")
        seed(engine, org, 0, 1000)
        small = eq_latency(ours, 1000, args.samples)
        seed(engine, org, 1000, args.big)
        big = eq_latency(ours, args.big, args.samples)
        print("| seeded users | p50 ms | p99 ms |")
        print("|---:|---:|---:|")
        # The org also holds the workload's users; the seeded ones are what is looked up.
        print(f"| 1,000 | {small.p(0.5):.1f} | {small.p(0.99):.1f} |")
        print(f"| {args.big:,} | {big.p(0.5):.1f} | {big.p(0.99):.1f} |")
        print(
            f"\np99 at {args.big:,} / p99 at 1,000 = {big.p(0.99) / small.p(0.99):.2f}"
            " (targets: ratio <= 1.5, p99 < 20 ms)"
        )


if __name__ == "__main__":
    main()
