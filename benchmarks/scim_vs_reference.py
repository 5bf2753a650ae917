"""odock-sync's SCIM server against its peers, same client, loopback.

Starts odock-sync (gunicorn, PostgreSQL), django-scim2 (a minimal Django project,
benchmarks/peers/django_scim2, same gunicorn settings, its own PostgreSQL database on the
same server, in a venv of its own under the temp dir), the reference scim2-server (in
memory) and the ceiling, a bare Flask app (benchmarks/bare_scim_app.py, no database, get
only) under the same gunicorn settings. Drives them with the same concurrent client, in
alternating slices of each operation, and prints requests per second and each server's CPU
per request (its processes and its PostgreSQL backends, read from /proc), then the ratios
against the targets. Then seeds odock-sync's database in bulk to 100,000 users and compares
the `userName eq` filter's p99 latency with its p99 at 1,000 users.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 python benchmarks/scim_vs_reference.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import cpu  # noqa: E402
from models.actions import mass_change  # noqa: E402
from models.base import new_id, utcnow  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.entities import IdentityLink, ScimEmail, ScimUser, User  # noqa: E402
from models.enums import Role, Source, UserStatus  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402
from tests.support import factories  # noqa: E402
from tests.support.broker import remove_queues  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BIN = Path(sys.executable).parent
PEER_PROJECT = ROOT / "benchmarks" / "peers" / "django_scim2"
PEER_REQUIREMENTS = (
    "django-scim2==0.23.0",
    "Django>=5.2,<5.3",
    "psycopg[binary]>=3.1",
    "gunicorn>=22",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, token: str) -> None:
    deadline = time.monotonic() + 120  # four workers importing the app on a loaded machine
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
    leader: int = 0  # the server's process, leader of its own session (0: not measured)
    database: str = ""  # its PostgreSQL database, whose backends' CPU is its own too

    def cpu_now(self) -> tuple[dict[int, float], dict[int, float]]:
        """CPU seconds so far of the server's processes and of its database backends."""
        own = cpu.cpu_by_pid(cpu.session_pids(self.leader)) if self.leader else {}
        backends = cpu.cpu_by_pid(cpu.database_pids(self.database)) if self.database else {}
        return own, backends


@dataclass(frozen=True)
class Serving:
    """gunicorn settings, the same for odock-sync and the bare ceiling."""

    workers: int
    threads: int
    worker_class: str

    def describe(self) -> str:
        return f"{self.workers} {self.worker_class} workers x {self.threads} threads"


def gunicorn(
    serving: Serving,
    app: str,
    port: int,
    env: dict[str, str],
    binary: Path = BIN / "gunicorn",
    cwd: Path = ROOT,
) -> subprocess.Popen[bytes]:
    """gunicorn in a session of its own, so its workers' CPU can be read as one."""
    return subprocess.Popen(
        [
            str(binary),
            *("--worker-class", serving.worker_class),
            *("--workers", str(serving.workers)),
            *("--threads", str(serving.threads)),
            *("--bind", f"127.0.0.1:{port}"),
            app,
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server and every process of its session (gunicorn's workers)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


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
        base = f"http://127.0.0.1:{port}/scim/v2"
        server = Server("odock-sync", base, token, process.pid, make_url(db_url).database or "")
        wait_up(server.base + "/ServiceProviderConfig", token)
        yield server, engine, org
    finally:
        stop(process)
        engine.dispose()
        remove_queues(broker, settings.celery_queue)


@contextmanager
def ceiling(serving: Serving) -> Iterator[Server]:
    """The bare Flask app (benchmarks/bare_scim_app.py) under the same gunicorn settings."""
    port = free_port()
    app = "benchmarks.bare_scim_app:create_bare_scim_app()"
    process = gunicorn(serving, app, port, dict(os.environ))
    try:
        server = Server("bare Flask", f"http://127.0.0.1:{port}/scim/v2", "bare", process.pid)
        wait_up(server.base + "/ServiceProviderConfig", server.token)
        yield server
    finally:
        stop(process)


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
        start_new_session=True,
    )
    try:
        server = Server("scim2-server", f"http://127.0.0.1:{port}", token, process.pid)
        wait_up(server.base + "/ServiceProviderConfig", token)
        yield server
    finally:
        stop(process)


def peer_venv(root: Path) -> Path:
    """A venv with Django and django-scim2 under `root`, made once and reused while its
    requirements match: they never go into odock-sync's own environment."""
    venv, wanted = root / "venv", "\n".join(PEER_REQUIREMENTS)
    marker = venv / "odock-bench-requirements.txt"
    if marker.exists() and marker.read_text() == wanted:
        return venv
    print(f"# installing {', '.join(PEER_REQUIREMENTS)} into {venv}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *PEER_REQUIREMENTS], check=True)
    marker.write_text(wanted)
    return venv


@contextmanager
def django_peer(server_url: str, serving: Serving, venv: Path) -> Iterator[Server]:
    """django-scim2 in the minimal project of benchmarks/peers/django_scim2, on a database of
    its own on the same PostgreSQL (created and dropped here), under the same gunicorn."""
    with database(server_url) as url:
        db, token = make_url(url), secrets.token_urlsafe(16)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "DJANGO_SETTINGS_MODULE": "benchpeer.settings",
            "PEER_DB_NAME": db.database or "",
            "PEER_DB_USER": db.username or "postgres",
            "PEER_DB_PASSWORD": db.password or "",
            "PEER_DB_HOST": db.host or "127.0.0.1",
            "PEER_DB_PORT": str(db.port or 5432),
            "PEER_TOKEN": token,
            "PEER_SECRET_KEY": secrets.token_urlsafe(32),
        }
        python = str(venv / "bin" / "python")
        migrate = [python, "-m", "django", "migrate", "--run-syncdb", "-v", "0"]
        subprocess.run(migrate, cwd=PEER_PROJECT, env=env, check=True)
        port = free_port()
        binary = venv / "bin" / "gunicorn"
        app = "benchpeer.wsgi:application"
        process = gunicorn(serving, app, port, env, binary=binary, cwd=PEER_PROJECT)
        try:
            base = f"http://127.0.0.1:{port}/scim/v2"
            server = Server("django-scim2", base, token, process.pid, db.database or "")
            wait_up(base + "/ServiceProviderConfig", token)
            yield server
        finally:
            stop(process)


# --- the client --------------------------------------------------------------------------


@dataclass
class Result:
    count: int
    seconds: float
    latencies: list[float]
    client_cpu: float = 0.0  # CPU seconds the client process itself spent
    server_cpu: float = 0.0  # CPU seconds of the server's own processes
    database_cpu: float = 0.0  # CPU seconds of its PostgreSQL backends
    backends_opened: int = 0  # PostgreSQL backends of its database started meanwhile

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def client_ms(self) -> float:
        return self.client_cpu / self.count * 1000

    @property
    def cpu_ms(self) -> float:
        """The server's CPU per request, its database backends included."""
        return (self.server_cpu + self.database_cpu) / self.count * 1000

    @property
    def database_ms(self) -> float:
        return self.database_cpu / self.count * 1000

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

    own_before, db_before = server.cpu_now()
    started, client_cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, calls))
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    own_after, db_after = server.cpu_now()
    return Result(
        len(calls),
        elapsed,
        latencies,
        client_cpu,
        cpu.used_between(own_before, own_after),
        cpu.used_between(db_before, db_after),
        len(db_after.keys() - db_before.keys()),
    )


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


ROUNDS = 5
GET = "get by id"
Results = dict[str, dict[str, Result]]  # operation -> server name -> result


def interleaved(
    workloads: list[Workload], step: Callable[[Workload], Calls], threads: int, warm: int
) -> dict[str, Result]:
    """The step on every server in alternating slices (one, two, three, one, two...), so a
    change in the shared machine's load during the step falls on all alike. `warm`: first
    every call on each at this many client threads, not measured, WARM_PASSES times on a
    server with a database (0: none; see WARMED)."""
    planned = [(workload, step(workload)) for workload in workloads]
    if warm:
        for workload, calls in planned:
            for _ in range(WARM_PASSES if workload.server.database else 1):
                drive(workload.server, calls, warm)
    slices: dict[str, list[Result]] = {workload.server.name: [] for workload in workloads}
    for index in range(ROUNDS):
        for workload, calls in planned:
            part = calls[len(calls) * index // ROUNDS : len(calls) * (index + 1) // ROUNDS]
            slices[workload.server.name].append(drive(workload.server, part, threads))
    return {name: merged(parts) for name, parts in slices.items()}


def merged(parts: list[Result]) -> Result:
    return Result(
        sum(r.count for r in parts),
        sum(r.seconds for r in parts),
        [latency for r in parts for latency in r.latencies],
        sum(r.client_cpu for r in parts),
        sum(r.server_cpu for r in parts),
        sum(r.database_cpu for r in parts),
        sum(r.backends_opened for r in parts),
    )


# Reads measured in steady state (unless --cold): after the creates every database is
# analysed, as autovacuum would have done within its minute (without statistics PostgreSQL
# plans odock-sync's prepared searches afresh on every execution), and unmeasured passes of
# each read's calls first give every server's connections their plans and caches.
# PostgreSQL plans a prepared statement afresh for its first five executions on each
# connection (0.8-0.9 ms each, 0.15-0.19 ms after), and a server here holds up to one pooled
# connection per thread (16). The warm-up runs at twice as many client connections as the
# server has threads, so every thread of every worker is busy and opens its connection (a
# pool opens one only when none is free); WARM_PASSES passes, each on new client connections
# that the workers share out afresh, give each connection its five first plans and more (a
# server without a database, the in-memory reference, gets one pass). One pass at the
# measuring client's 8 threads left to the measured slices the connections a worker opens
# only when more of the client's connections land on it, or uses last (LIFO), with their
# first plans. Writes are measured as they come (a warm-up would use up their users).
WARMED = ("get by id", "userName eq", "externalId eq", "emails[type eq work and value eq]")
WARM_PASSES = 3


def compare(
    servers: list[Server],
    bare: Server,
    users: int,
    samples: int,
    threads: int,
    warm: Callable[[list[str]], None] | None,
    server_threads: int = 16,
) -> tuple[Results, dict[str, float]]:
    """Each operation on every server, interleaved; the bare Flask ceiling joins the get
    (with odock-sync's ids). Also returns the 1-minute load average before each operation.
    `warm`: None (cold), or what analyses the servers' databases after the creates;
    `server_threads`: how many requests a server serves at once (workers x threads)."""
    workloads = [Workload(server, users) for server in servers]
    ceiling = Workload(bare, users)
    ceiling.ids = workloads[0].ids
    picks = [random.randrange(users) for _ in range(samples)]
    starts = [random.randrange(max(users - 100, 1)) + 1 for _ in range(max(samples // 5, 10))]
    targets = random.sample(range(users), min(samples, users))
    steps: dict[str, Callable[[Workload], Calls]] = {
        "create user": lambda w: w.create(),
        GET: lambda w: w.get(picks),
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
    results: Results = {}
    loads: dict[str, float] = {}
    for name, step in steps.items():
        loads[name] = os.getloadavg()[0]
        joined = [*workloads, ceiling] if name == GET else workloads
        warm_threads = 2 * server_threads if warm is not None and name in WARMED else 0
        results[name] = interleaved(joined, step, threads, warm_threads)
        progress(name, results[name], loads[name])
        if name == "create user" and warm is not None:
            warm([server.database for server in servers if server.database])
    return results, loads


def progress(name: str, by_server: dict[str, Result], load: float) -> None:
    figures = ", ".join(
        f"{server} {r.rate:,.0f} req/s {r.cpu_ms:.2f} ms CPU"
        + (
            f" ({r.database_ms:.2f} database, {r.backends_opened} backends opened)"
            if r.database_cpu
            else ""
        )
        for server, r in by_server.items()
    )
    print(f"  {name} (load {load:.1f}): {figures}", flush=True)


def table(results: Results, loads: dict[str, float], names: list[str]) -> None:
    """Rate and CPU per request (server processes + their PostgreSQL backends) per server."""
    head = " | ".join(f"{name} req/s | {name} CPU ms/req" for name in names)
    print(f"| operation | load | {head} | odock-sync p50 / p99 ms |")
    print("|---|---:|" + "---:|" * (2 * len(names) + 1))
    for operation, by_server in results.items():
        cells = []
        for name in names:
            r = by_server.get(name)
            cells.append(f"{r.rate:,.0f} | {r.cpu_ms:.2f}" if r else "- | -")
        ours = by_server["odock-sync"]
        print(
            f"| {operation} | {loads[operation]:.1f} | {' | '.join(cells)}"
            f" | {ours.p(0.5):.1f} / {ours.p(0.99):.1f} |"
        )


# operation -> (what it is held against, target ratio); "rate" compares requests per second,
# "cpu" the other server's CPU per request over ours (the ratio that holds on a shared machine).
TARGETS: list[tuple[str, str, float]] = [
    *((op, "django-scim2", 2.0) for op in ("create user", GET, "userName eq", "externalId eq")),
    ("emails[type eq work and value eq]", "django-scim2", 2.0),
    ("page of 100", "django-scim2", 2.0),
    ("PATCH active", "django-scim2", 2.0),
    *((op, "bare Flask", 0.6) for op in (GET, "userName eq", "externalId eq")),
    *((op, "bare Flask", 0.35) for op in ("create user", "PATCH active")),
    ("emails[type eq work and value eq]", "scim2-server", 3.0),
    ("page of 100", "scim2-server", 3.0),
]


def against_targets(results: Results) -> None:
    print("| operation | against | target | by rate | by CPU per request | met |")
    print("|---|---|---:|---:|---:|---|")
    for operation, other, target in TARGETS:
        ours = results[operation]["odock-sync"]
        theirs = results[GET if other == "bare Flask" else operation].get(other)
        if theirs is None:
            continue
        by_rate = ours.rate / theirs.rate
        by_cpu = theirs.cpu_ms / ours.cpu_ms if ours.cpu_ms else float("nan")
        met = "yes" if by_rate >= target else ("by CPU only" if by_cpu >= target else "no")
        print(f"| {operation} | {other} | {target:g}x | {by_rate:.2f}x | {by_cpu:.2f}x | {met} |")


def client_note(results: Results) -> str:
    bare = results[GET]["bare Flask"]
    return (
        f"The client itself spends {bare.client_ms:.2f} ms of CPU per request"
        f" ({os.cpu_count()} CPUs on this machine)."
    )


# --- 100,000 users -------------------------------------------------------------------------


def bench_organisation(database_url: str, broker_url: str) -> tuple[Settings, Any, Any, str]:
    """Quiet settings for this database and broker, the database migrated, and one
    organisation ("Bench") with its SCIM token: (settings, engine, organisation, token)."""
    settings = Settings(
        database_url=database_url,
        celery_broker_url=broker_url,
        secret_key=secrets.token_urlsafe(32),
        log_level="WARNING",
    )
    engine = make_engine(settings)
    upgrade(engine)
    with make_session_factory(engine)() as session:
        org = factories.make_org(session, "Bench")
        token = factories.scim_token(session, org)
        session.commit()
    return settings, engine, org, token


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
    # What the seed leaves for the server to do in the background (autovacuum of the inserted
    # rows, the checkpoint that writes them out) is done here, before the latencies are taken.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE)"))
        connection.execute(text("CHECKPOINT"))


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


def analyse(server_url: str) -> Callable[[list[str]], None]:
    """What runs ANALYZE in each of these databases of the PostgreSQL server."""

    def run(databases: list[str]) -> None:
        url = make_url(server_url.replace("postgresql://", "postgresql+psycopg://", 1))
        for name in databases:
            engine = create_engine(url.set(database=name), isolation_level="AUTOCOMMIT")
            with engine.connect() as connection:
                connection.execute(text("ANALYZE"))
            engine.dispose()

    return run


def uptime() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


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
    parser.add_argument(
        "--latency-samples",
        type=int,
        default=2000,
        help="sequential lookups at each scale (a p99 of 200 is the second-slowest of them)",
    )
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--no-django", action="store_true", help="leave the django-scim2 peer out")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="reads without ANALYZE after the creates and without a warm-up slice (the method"
        " of the figures before 5 Dec 2026 08:45 UTC)",
    )
    parser.add_argument(
        "--peer-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "odock-bench-peers",
        help="where the django-scim2 peer's venv is made (and reused)",
    )
    args = parser.parse_args()
    db = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    random.seed(7)
    threads = 1 if args.worker_class == "sync" else args.server_threads
    serving = Serving(args.workers, threads, args.worker_class)
    venv = None if args.no_django else peer_venv(args.peer_dir)
    print(
        f"# {os.cpu_count()} CPUs; client: {args.threads} threads;"
        f" gunicorn: {serving.describe()}; {uptime()}"
    )
    with database(db) as url, odock_sync(url, broker, serving) as (ours, engine, org):
        with ExitStack() as running:
            servers = [ours]
            if venv is not None:
                servers.append(running.enter_context(django_peer(db, serving, venv)))
            servers.append(running.enter_context(reference()))
            bare = running.enter_context(ceiling(serving))
            warm = None if args.cold else analyse(db)
            results, loads = compare(
                servers,
                bare,
                args.users,
                args.samples,
                args.threads,
                warm,
                serving.workers * serving.threads,
            )
        names = [server.name for server in [*servers, bare]]
        print(f"\n## {args.users} users: requests per second and server CPU per request\n")
        table(results, loads, names)
        print("\n## Against the targets\n")
        against_targets(results)
        print(f"\n{client_note(results)}")
        print(f"\nafter the comparison: {uptime()}")
        if args.skip_big:
            return
        print("\n## userName eq at scale (one client, sequential)\n")
        seed(engine, org, 0, 1000)
        small_load = uptime()
        small = eq_latency(ours, 1000, args.latency_samples)
        seed(engine, org, 1000, args.big)
        big_load = uptime()
        big = eq_latency(ours, args.big, args.latency_samples)
        print("| seeded users | p50 ms | p99 ms | CPU ms/req | at |")
        print("|---:|---:|---:|---:|---|")
        # The org also holds the workload's users; the seeded ones are what is looked up.
        for label, result, load in (("1,000", small, small_load), (f"{args.big:,}", big, big_load)):
            print(
                f"| {label} | {result.p(0.5):.1f} | {result.p(0.99):.1f}"
                f" | {result.cpu_ms:.2f} | {load} |"
            )
        print(
            f"\np99 at {args.big:,} / p99 at 1,000 = {big.p(0.99) / small.p(0.99):.2f}"
            " (targets: ratio <= 1.5, p99 < 20 ms)"
        )


if __name__ == "__main__":
    main()
