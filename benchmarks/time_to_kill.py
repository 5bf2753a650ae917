"""Time to kill access: from a revocation arriving at odock-sync to the gateway receiving the
invalidation of the revoked key, per source, while a background SCIM update load runs.

Everything runs as `odock-sync serve` runs it (gunicorn 2 workers x 8 threads, a bulk worker,
an urgent worker and a drain worker, beat), with the gateway stood in for by a loopback HTTP
server in a process of its own (benchmarks/gateway_stub.py) that notes when each key's
invalidation came.

Sources, each revoking users that own one key:
  admin   POST /api/v1/users/{id}/revoke
  scim    PATCH /scim/v2/Users/{id} {"active": false} (Okta's shape)
  okta    an Okta event hook delivery, user.lifecycle.deactivate
  events  a signed (Standard Webhooks) generic event, user.deactivated
  ldap    users locked in a real slapd (pwdAccountLockedTime), then an incremental sync
          requested through the admin API; fewer revocations (a sync run each round)

Backends: PostgreSQL + Redis (DATABASE_URL / CELERY_BROKER_URL, defaulting to the local
servers; a database and a queue of its own) and the embedded default (SQLite files and the
SQLAlchemy broker in a temporary directory).

Where the time goes, per revocation, from timestamps the system writes anyway:
  arrival -> queued     the request (or the drain, or the sync run) until the invalidation is
                        enqueued in its transaction (outbox row `available_at`)
  queued -> published   commit, then the after-commit publish (`dispatched_at`)
  published -> pickup   the broker until the urgent worker receives it (its log)
  queued -> pickup      both of the above; the only one for an eager message (written
                        dispatched, so its commit and publish have no timestamp of their own)
  pickup -> gateway     the pool hand-off, the task and the HTTP request

    .venv/bin/python benchmarks/time_to_kill.py [--backend pg|embedded|both] [--count 1000]
        [--rate 10] [--background-rate 20] [--ldap-rounds 20] [--ldap-per-round 5]
        [--single-worker] [--urgent-drains] [--poll-interval S] [--grace S]

--single-worker runs one worker on every queue (as before the urgent queue had a worker of
its own); --urgent-drains runs no drain worker, the urgent worker consuming the drain queue
too (as before the drain queue); --poll-interval sets BROKER_POLL_INTERVAL for the embedded
broker. The background SCIM load is offered at a fixed rate from a bounded queue: ticks that
find it full are dropped and counted, as are late starts (> 1 s) and errors.

A key not at the gateway when its source's wait ends is reported (`not_received_in_time`) as
refused (its revocation answered with an error: nothing was revoked), late (arrived within the
final --grace wait: how late and by which path) or never (accepted, never arrived: a loss).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ldap
import ldap.modlist
import requests
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli.serve import (  # noqa: E402
    GUNICORN_CONFIG,
    URGENT_CONCURRENCY,
    URGENT_NICENESS,
    URGENT_PREFETCH,
    WORKER_NICENESS,
    celery_worker_command,
    drain_worker_command,
    urgent_worker_command,
)
from connectors import signed_webhooks  # noqa: E402
from models.actions import event_hooks, mass_change, organisations, tokens  # noqa: E402
from models.actions.directory_connectors import create_connector  # noqa: E402
from models.actor import Actor  # noqa: E402
from models.base import new_id, utcnow  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.entities import (  # noqa: E402
    DirectorySyncRun,
    IdentityLink,
    KeyCutoff,
    KeyInvalidation,
    Organisation,
    OutboxMessage,
    ScimUser,
    User,
    VirtualApiKey,
)
from models.enums import KeyType, Role, Source, SyncKind, TokenScope, UserStatus  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402
from tests.events import okta_payloads as okta  # noqa: E402
from tests.support.slapd import ROOT_DN, ROOT_PASSWORD, SUFFIX, Slapd, start_slapd  # noqa: E402
from worker.celery_app import drain_queue, worker_queues  # noqa: E402

SETUP = Actor(Source.ADMIN, "benchmark")
OKTA_SECRET = "okta-bench-secret-0123456789"
SCIM_TYPE = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PUSH_SOURCES = ("admin", "scim", "okta", "events")
RECEIVED = re.compile(r"Task gateway\.invalidate_keys\[outbox-(\d+)\] received")
SUCCEEDED = re.compile(
    r"Task (events\.drain|gateway\.invalidate_keys)\[.*succeeded in ([\d.]+)s: (\w+)"
)


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start on {port}")


@dataclass
class Stack:
    settings: Settings
    workdir: Path
    web_port: int
    receipts: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=(self.workdir / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()  # each stops its own children (pool, web workers)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def environment(settings: Settings, metrics_dir: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    for name, value in settings.model_dump().items():
        env[name.upper()] = str(value)
    return env


def start_stack(
    settings: Settings,
    workdir: Path,
    *,
    single_worker: bool,
    prefetch: int | None,
    concurrency: int | None,
    urgent_drains: bool = False,
) -> Stack:
    gateway_port, web_port = free_port(), free_port()
    stack = Stack(
        settings=settings.model_copy(
            update={"gateway_url": f"http://127.0.0.1:{gateway_port}", "gateway_secret": "bench"}
        ),
        workdir=workdir,
        web_port=web_port,
        receipts=workdir / "receipts.txt",
    )
    metrics_dir = workdir / "metrics"
    metrics_dir.mkdir()
    env = environment(stack.settings, metrics_dir)
    python = sys.executable
    stub = str(ROOT / "benchmarks" / "gateway_stub.py")
    stack.start("gateway", [python, stub, str(gateway_port), str(stack.receipts)], env)
    web = [python, "-m", "gunicorn", "--workers", "2", "--threads", "8"]
    web += ["--bind", f"127.0.0.1:{web_port}", "--config", GUNICORN_CONFIG]
    stack.start("web", [*web, "--log-level", "warning", "webhooks.app:create_app()"], env)
    queue = settings.celery_queue
    if single_worker:
        command = celery_worker_command(worker_queues(queue), 2, loglevel="INFO")
        stack.start("urgent", niced(WORKER_NICENESS, command, "worker"), env)
    else:
        command = celery_worker_command([queue], 2, loglevel="WARNING")
        stack.start("worker", niced(WORKER_NICENESS, command, "worker"), env)
        urgent = urgent_worker_command(queue, loglevel="INFO")
        if urgent_drains:  # as before the drain queue: the urgent worker's slots drain
            urgent[urgent.index("-Q") + 1] += f",{drain_queue(queue)}"
        if prefetch is not None:  # the last one given counts
            urgent.append(f"--prefetch-multiplier={prefetch}")
        if concurrency is not None:
            urgent.append(f"--concurrency={concurrency}")
        stack.start("urgent", niced(URGENT_NICENESS, urgent, "urgent"), env)
        if not urgent_drains:
            drain = drain_worker_command(queue, loglevel="INFO")
            stack.start("drain", niced(URGENT_NICENESS, drain, "drain"), env)
    beat = [python, "-m", "celery", "-A", "worker.entry", "beat", "--loglevel=WARNING"]
    stack.start("beat", [*beat, "--schedule", str(workdir / "beat-schedule")], env)
    wait_port(gateway_port, "the gateway stub")
    wait_port(web_port, "gunicorn")
    deadline = time.monotonic() + 60
    while "ready." not in (workdir / "urgent.log").read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise RuntimeError("the urgent worker did not start")
        time.sleep(0.2)
    return stack


def niced(niceness: int, command: list[str], name: str) -> list[str]:
    return ["nice", "-n", str(niceness), *command, "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h"]


# ---------------------------------------------------------------- data


@dataclass
class World:
    organisation_id: uuid.UUID
    admin_token: str
    scim_token: str
    signing_secret: str
    connector_id: str = ""
    # per source: (what the request names, the key it must kill)
    targets: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    background: list[str] = field(default_factory=list)  # SCIM ids updated meanwhile


def seed(settings: Settings, count: int) -> World:
    engine = make_engine(settings)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions() as session:
        org = organisations.create_organisation(session, name="Bench", slug="bench", actor=SETUP)
        admin = User(
            organisation_id=org.id,
            name="Bench Admin",
            email="admin@bench.test",
            email_key="admin@bench.test",
            role=Role.ORG_ADMIN,
            status=UserStatus.ACTIVE,
        )
        session.add(admin)
        session.flush()
        world = World(
            organisation_id=org.id,
            admin_token=tokens.create_token(
                session, organisation=org, scope=TokenScope.ADMIN, user=admin, actor=SETUP
            ).secret,
            scim_token=tokens.create_token(
                session, organisation=org, scope=TokenScope.SCIM, actor=SETUP
            ).secret,
            signing_secret=event_hooks.add_signing_secret(
                session, organisation=org, secret_key=settings.secret_key, actor=SETUP
            ).secret,
        )
        event_hooks.set_okta_secret(
            session,
            organisation=org,
            secret_key=settings.secret_key,
            actor=SETUP,
            secret=OKTA_SECRET,
        )
        let_mass_changes_through(session, org)
        links = {"admin": None, "okta": Source.OKTA, "events": Source.EVENTS}
        for source, link in links.items():
            world.targets[source] = bulk_users(session, org.id, source, count, link)
        session.commit()
    engine.dispose()
    return world


def let_mass_changes_through(session: Any, org: Organisation) -> None:
    """A thousand deactivations in minutes is what the mass-change gate (issue 13 item 4) holds
    for an admin; measured here is the path of a change it lets through (the gate still counts
    each one), so its thresholds are set beyond the benchmark's counts."""
    mass_change.set_thresholds(
        session, organisation=org, actor=SETUP, threshold_count=10**9, threshold_percent=100
    )


def bulk_users(
    session: Any, org_id: uuid.UUID, source: str, count: int, link: Source | None
) -> list[tuple[str, str]]:
    """`count` active users with one key each; linked to `link` under `<source>-<i>` ids."""
    now = utcnow()
    users, keys, links, targets = [], [], [], []
    for i in range(count):
        user_id, key_id, email = new_id(), new_id(), f"{source}{i}@bench.test"
        users.append(
            {
                "id": user_id,
                "organisation_id": org_id,
                "name": f"{source} {i}",
                "email": email,
                "email_key": email,
                "role": Role.USER,
                "status": UserStatus.ACTIVE,
                "created_at": now,
                "updated_at": now,
            }
        )
        keys.append(key_row(key_id, org_id, user_id, now))
        if link is not None:
            links.append(
                {
                    "id": new_id(),
                    "organisation_id": org_id,
                    "user_id": user_id,
                    "source": link,
                    "external_id": f"{source}-{i}",
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
            )
        targets.append((f"{source}-{i}" if link else str(user_id), str(key_id)))
    session.execute(insert(User), users)
    session.execute(insert(VirtualApiKey), keys)
    if links:
        session.execute(insert(IdentityLink), links)
    return targets


def key_row(key_id: uuid.UUID, org_id: uuid.UUID, user_id: uuid.UUID, now: datetime) -> dict:
    return {
        "id": key_id,
        "organisation_id": org_id,
        "key_type": KeyType.USER,
        "owner_user_id": user_id,
        "name": "bench key",
        "masked_value": "sk-...bench",
        "created_by_user_id": user_id,
        "created_at": now,
        "updated_at": now,
    }


def add_keys(settings: Settings, user_ids: list[uuid.UUID]) -> list[str]:
    engine = make_engine(settings)
    now = utcnow()
    with make_session_factory(engine)() as session:
        org_id = session.get_one(User, user_ids[0]).organisation_id
        rows = [key_row(new_id(), org_id, user_id, now) for user_id in user_ids]
        session.execute(insert(VirtualApiKey), rows)
        session.commit()
    engine.dispose()
    return [str(row["id"]) for row in rows]


def scim_users(stack: Stack, world: World, count: int, background: int) -> None:
    """Created through SCIM, as an IdP would: `count` to deactivate, `background` to update."""
    headers = {"Authorization": f"Bearer {world.scim_token}", "Content-Type": SCIM_TYPE}

    def create(name: str) -> str:
        body = {"schemas": [USER_SCHEMA], "userName": f"{name}@bench.test", "active": True}
        response = requests.post(f"{stack.url}/scim/v2/Users", json=body, headers=headers)
        response.raise_for_status()
        return str(response.json()["id"])

    with ThreadPoolExecutor(8) as pool:
        revoked = list(pool.map(create, [f"scim{i}" for i in range(count)]))
        world.background = list(pool.map(create, [f"busy{i}" for i in range(background)]))
    engine = make_engine(stack.settings)
    with make_session_factory(engine)() as session:
        owners = dict(session.execute(select(ScimUser.id, ScimUser.user_id)).all())
    engine.dispose()
    keys = add_keys(stack.settings, [owners[uuid.UUID(scim_id)] for scim_id in revoked])
    world.targets["scim"] = list(zip(revoked, keys, strict=True))


# ---------------------------------------------------------------- sending


def revoke_request(source: str, world: World, target: str) -> Callable[[requests.Session], int]:
    """One revocation from `source` for `target`, as that source sends it."""
    if source == "admin":
        url, headers = (
            f"/api/v1/users/{target}/revoke",
            {"Authorization": f"Bearer {world.admin_token}"},
        )
        return lambda http: http.post(url, headers=headers).status_code
    if source == "scim":
        body = {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "value": {"active": False}}],
        }
        headers = {"Authorization": f"Bearer {world.scim_token}", "Content-Type": SCIM_TYPE}
        return lambda http: (
            http.patch(f"/scim/v2/Users/{target}", json=body, headers=headers).status_code
        )
    if source == "okta":
        payload = okta.delivery(
            okta.event("user.lifecycle.deactivate", [okta.user_target(target, f"{target}@x")])
        )
        headers = {"Authorization": OKTA_SECRET}
        return lambda http: (
            http.post("/hooks/okta/bench", json=payload, headers=headers).status_code
        )
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "user.deactivated",
        "occurred_at": utcnow().isoformat(),
        "user": {"external_id": target},
    }
    body = json.dumps(event).encode()
    signed = signed_webhooks.sign(world.signing_secret, msg_id=f"msg_{uuid.uuid4().hex}", body=body)
    signed = {**signed, "Content-Type": "application/json"}
    return lambda http: http.post("/hooks/events/bench", data=body, headers=signed).status_code


class BaseUrlSession(requests.Session):
    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        return super().request(method, self.base + url, *args, **kwargs)


def open_loop(
    stack: Stack, calls: list[Callable[[requests.Session], int]], rate: float, threads: int = 16
) -> tuple[list[float], list[float], list[int]]:
    """Send `calls` at `rate` per second from their schedule: when each was sent and answered,
    and its status."""
    local = threading.local()
    sent = [0.0] * len(calls)
    answered = [0.0] * len(calls)
    statuses = [0] * len(calls)
    start = time.monotonic() + 0.2

    def one(i: int) -> None:
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if not hasattr(local, "http"):
            local.http = BaseUrlSession(stack.url)
        sent[i] = time.time()
        try:
            statuses[i] = calls[i](local.http)
        except requests.RequestException:
            statuses[i] = -1
        answered[i] = time.time()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(len(calls))))
    return sent, answered, statuses


class Background:
    """SCIM profile updates at a fixed rate until stopped, from a bounded queue: a tick that
    finds the queue full is dropped, not queued, so an overloaded server meets the same offered
    rate instead of a backlog that grows without bound (and would block the report at the end).
    Answer times, drops, late starts and errors are all reported."""

    QUEUE_BOUND = 8  # at most this many ticks waiting for a sender
    LATE_AFTER = 1.0  # a tick sent this long after its moment counts as late
    TIMEOUT = 10.0

    def __init__(self, stack: Stack, world: World, rate: float, senders: int) -> None:
        """`senders` threads send, one request each at a time: the rate they can keep up is
        senders / answer time (4 senders, as before the queue was bounded: 20/s needs answers
        under 200 ms)."""
        self.stack, self.world, self.rate = stack, world, rate
        self.stopping = threading.Event()
        self.counting = threading.Lock()  # senders count late starts and errors together
        self.ticks: queue.Queue[tuple[int, float] | None] = queue.Queue(self.QUEUE_BOUND)
        self.seconds: list[float] = []
        self.offered = self.dropped = self.late = self.errors = self.unsent = 0
        self.began = self.ended = 0.0
        self.ticker = threading.Thread(target=self.tick, daemon=True)
        self.senders = [threading.Thread(target=self.send, daemon=True) for _ in range(senders)]

    def tick(self) -> None:
        self.began = time.monotonic()
        n = 0
        while not self.stopping.is_set():
            moment = self.began + n / self.rate
            self.stopping.wait(max(0.0, moment - time.monotonic()))
            if self.stopping.is_set():
                break
            self.offered += 1
            try:
                self.ticks.put_nowait((n, moment))
            except queue.Full:
                self.dropped += 1
            n += 1
        self.ended = time.monotonic()

    def send(self) -> None:
        headers = {"Authorization": f"Bearer {self.world.scim_token}", "Content-Type": SCIM_TYPE}
        http = requests.Session()
        while (tick := self.ticks.get()) is not None:
            n, moment = tick
            if time.monotonic() - moment > self.LATE_AFTER:
                with self.counting:
                    self.late += 1
            self.update(http, self.world.background[n % len(self.world.background)], n, headers)

    def update(self, http: requests.Session, scim_id: str, n: int, headers: dict[str, str]) -> None:
        body = {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "value": {"displayName": f"Busy {n}"}}],
        }
        began = time.monotonic()
        try:
            response = http.patch(
                f"{self.stack.url}/scim/v2/Users/{scim_id}",
                json=body,
                headers=headers,
                timeout=self.TIMEOUT,
            )
            ok = response.status_code == 200
        except requests.RequestException:
            ok = False
        if ok:
            self.seconds.append(time.monotonic() - began)
        else:
            with self.counting:
                self.errors += 1

    def report(self) -> dict[str, Any]:
        elapsed = max(self.ended - self.began, 1e-9)
        return {
            **ms(self.seconds),
            "offered_per_second": self.rate,
            "offered": self.offered,
            "answered_per_second": round(len(self.seconds) / elapsed, 1),
            "dropped_queue_full": self.dropped,
            "late_over_1s": self.late,
            "unsent_at_stop": self.unsent,
            "errors": self.errors,
        }

    def __enter__(self) -> Background:
        self.ticker.start()
        for sender in self.senders:
            sender.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop ticking; what still waits is counted, not sent; senders finish their request."""
        self.stopping.set()
        self.ticker.join()
        while True:
            try:
                self.ticks.get_nowait()
                self.unsent += 1
            except queue.Empty:
                break
        for _sender in self.senders:
            self.ticks.put(None)
        for sender in self.senders:
            sender.join(self.TIMEOUT + 1)


def receipts(stack: Stack) -> dict[str, float]:
    found: dict[str, float] = {}
    if stack.receipts.exists():
        for line in stack.receipts.read_text().splitlines():
            key, at = line.split()
            found.setdefault(key, float(at))
    return found


def wait_received(stack: Stack, keys: list[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        seen = receipts(stack)
        if all(key in seen for key in keys) or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


# ---------------------------------------------------------------- LDAP


def ldap_setup(stack: Stack, world: World, slapd: Slapd, users: int) -> list[str]:
    """`users` people in a subtree, a connector for it, imported by a full sync; their keys."""
    conn = slapd.connect()
    base = f"ou=bench-{uuid.uuid4().hex[:6]},{SUFFIX}"
    for dn, attrs in [
        (base, {"objectClass": [b"organizationalUnit"], "ou": [base.split(",")[0][3:].encode()]}),
        (f"ou=people,{base}", {"objectClass": [b"organizationalUnit"], "ou": [b"people"]}),
        (f"ou=groups,{base}", {"objectClass": [b"organizationalUnit"], "ou": [b"groups"]}),
    ]:
        conn.add_s(dn, ldap.modlist.addModlist(attrs))
    dns = []
    for i in range(users):
        dn = f"uid=ldap{i},ou=people,{base}"
        attrs = {
            "objectClass": [b"inetOrgPerson"],
            "uid": [f"ldap{i}".encode()],
            "cn": [f"Ldap {i}".encode()],
            "sn": [b"Bench"],
            "mail": [f"ldap{i}@ldap.bench.test".encode()],
        }
        conn.add_s(dn, ldap.modlist.addModlist(attrs))
        dns.append(dn)
    conn.unbind_s()
    engine = make_engine(stack.settings)
    with make_session_factory(engine)() as session:
        org = session.get_one(Organisation, world.organisation_id)
        connector = create_connector(
            session,
            organisation=org,
            fields={
                "name": "bench",
                "server_urls": [slapd.url],
                "bind_dn": ROOT_DN,
                "base_dn": f"ou=people,{base}",
                "group_base_dn": f"ou=groups,{base}",
                # thousands of revocations on purpose
                "safety": {"thresholds": {"revoke": {"count": 1_000_000, "percent": 100}}},
            },
            bind_password=ROOT_PASSWORD,
            settings=stack.settings,
            actor=SETUP,
        )
        session.commit()
        world.connector_id = str(connector.id)
    request_sync(stack, world, "full")
    wait_runs(stack, 1)
    with make_session_factory(engine)() as session:
        linked = dict(
            session.execute(
                select(User.email, User.id)
                .join(IdentityLink, IdentityLink.user_id == User.id)
                .where(IdentityLink.connector_id == connector.id)
            ).all()
        )
    engine.dispose()
    owners = [linked[f"ldap{i}@ldap.bench.test"] for i in range(users)]
    world.targets["ldap"] = list(zip(dns, add_keys(stack.settings, owners), strict=True))
    return dns


def request_sync(stack: Stack, world: World, kind: str) -> None:
    response = requests.post(
        f"{stack.url}/api/v1/directory/connectors/{world.connector_id}/sync",
        json={"kind": kind},
        headers={"Authorization": f"Bearer {world.admin_token}"},
    )
    response.raise_for_status()


def wait_runs(stack: Stack, finished: int, timeout: float = 120) -> None:
    engine = make_engine(stack.settings)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                done = connection.scalar(
                    select(func.count()).where(DirectorySyncRun.finished_at.is_not(None))
                )
            if (done or 0) >= finished:
                return
            time.sleep(0.2)
        raise RuntimeError("the directory sync did not finish")
    finally:
        engine.dispose()


def run_waits(stack: Stack, requested: list[float]) -> list[float]:
    """For each incremental sync requested, how long until its run started (a worker took it)."""
    engine = make_engine(stack.settings)
    with engine.connect() as connection:
        started = connection.scalars(
            select(DirectorySyncRun.started_at)
            .where(
                DirectorySyncRun.kind == SyncKind.INCREMENTAL,
                DirectorySyncRun.trigger != "schedule",  # beat's own runs, every few minutes
            )
            .order_by(DirectorySyncRun.started_at)
        ).all()
    engine.dispose()
    return [(epoch(at) or 0.0) - asked for asked, at in zip(requested, started, strict=False)]


def ldap_rounds(
    stack: Stack, world: World, slapd: Slapd, rounds: int, per_round: int
) -> dict[str, dict[str, float]]:
    """Lock `per_round` people, request an incremental sync, wait for their keys; repeat."""
    conn = slapd.connect()
    moments: dict[str, dict[str, float]] = {}
    targets = iter(world.targets["ldap"])
    for _ in range(rounds):
        batch = [next(targets) for _ in range(per_round)]
        time.sleep(1.1)  # modifyTimestamp has whole seconds: a new second for each round
        locked_at = time.time()
        for dn, _key in batch:
            conn.modify_s(dn, [(ldap.MOD_REPLACE, "pwdAccountLockedTime", [b"000001010000Z"])])
        requested_at = time.time()
        request_sync(stack, world, "incremental")
        for _dn, key in batch:
            moments[key] = {"locked": locked_at, "requested": requested_at}
        wait_received(stack, [key for _dn, key in batch], timeout=60)
    conn.unbind_s()
    return moments


# ---------------------------------------------------------------- analysis


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def ms(values: list[float]) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {
        "n": len(values),
        "p50": r(percentile(values, 50)),
        "p99": r(percentile(values, 99)),
        "max": r(max(values, default=None)),
    }  # type: ignore[type-var]


def epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def pickups(stack: Stack) -> dict[int, float]:
    """When the worker received each invalidation task, by outbox id (its JSON log)."""
    found: dict[int, float] = {}
    for line in (stack.workdir / "urgent.log").read_text(errors="replace").splitlines():
        match = RECEIVED.search(line)
        if not match:
            continue
        try:
            stamp = json.loads(line)["timestamp"]
        except (ValueError, KeyError):
            continue
        found[int(match.group(1))] = datetime.fromisoformat(
            stamp.replace("Z", "+00:00")
        ).timestamp()
    return found


def urgent_work(stack: Stack) -> dict[str, Any]:
    """What the urgent and drain workers' slots did (their logs): the drains' runs and pace,
    and how long an invalidation task took. A drain slower than the stream is the events'
    backlog."""
    drains: list[tuple[float, int]] = []
    invalidations: list[float] = []
    logs = [stack.workdir / name for name in ("urgent.log", "drain.log")]
    lines = [
        line
        for log in logs
        if log.exists()
        for line in log.read_text("utf-8", "replace").splitlines()
    ]
    for line in lines:
        match = SUCCEEDED.search(line)
        if match is None:
            continue
        seconds = float(match.group(2))
        if match.group(1) == "events.drain":
            drains.append((seconds, int(match.group(3)) if match.group(3).isdigit() else 0))
        else:
            invalidations.append(seconds)
    busy = sum(seconds for seconds, applied in drains if applied)
    applied = sum(applied for _seconds, applied in drains)
    return {
        "drain_runs": len(drains),
        "drain_runs_with_nothing_to_do": sum(1 for _seconds, n in drains if not n),
        "events_drained": applied,
        "drain_busy_seconds": round(busy, 1),
        "events_per_second_while_draining": round(applied / busy, 1) if busy else None,
        "longest_drain_run_seconds": round(max((s for s, _n in drains), default=0.0), 1),
        "invalidation_task_ms": ms(invalidations),
    }


def breakdown(
    stack: Stack,
    sent: dict[str, float],
    seen: dict[str, float],
    keys_by_source: dict[str, list[str]],
) -> dict[str, Any]:
    engine = make_engine(stack.settings)
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.kwargs,
                OutboxMessage.available_at,
                OutboxMessage.dispatched_at,
            ).where(OutboxMessage.task == "gateway.invalidate_keys")
        ).all()
    engine.dispose()
    by_key = {key: row for row in rows for key in row.kwargs["key_ids"]}
    picked = pickups(stack)
    report: dict[str, Any] = {}
    for source, keys in keys_by_source.items():
        parts: dict[str, list[float]] = {
            name: []
            for name in (
                "sent_to_gateway",
                "arrival_to_gateway",
                "arrival_to_queued",
                "queued_to_published",
                "published_to_pickup",
                "queued_to_pickup",
                "pickup_to_gateway",
            )
        }
        missing = 0
        for key in keys:
            row, received = by_key.get(key), seen.get(key)
            if row is None or received is None:
                missing += 1
                continue
            arrived = row.kwargs.get("arrived_at")
            queued, published = epoch(row.available_at), epoch(row.dispatched_at)
            pickup = picked.get(row.id)
            if key in sent:
                parts["sent_to_gateway"].append(received - sent[key])
            if arrived is not None:
                parts["arrival_to_gateway"].append(received - arrived)
                if queued is not None:
                    parts["arrival_to_queued"].append(queued - arrived)
            # An eager message is written dispatched (dispatched_at == available_at): its
            # commit and publish have no timestamp of their own and show in queued -> pickup.
            eager = queued is not None and published == queued
            if queued is not None and published is not None and not eager:
                parts["queued_to_published"].append(published - queued)
            if published is not None and pickup is not None and not eager:
                parts["published_to_pickup"].append(pickup - published)
            if queued is not None and pickup is not None:
                parts["queued_to_pickup"].append(pickup - queued)
            if pickup is not None:
                parts["pickup_to_gateway"].append(received - pickup)
        report[source] = {"missing": missing, **{name: ms(v) for name, v in parts.items()}}
    return report


def accepted_answer(status: int | None) -> bool:
    """The revocation was taken in (2xx); None: no request of its own (LDAP, a sync run)."""
    return status is None or 200 <= status < 300


def stragglers(
    stack: Stack,
    keys_by_source: dict[str, list[str]],
    seen: dict[str, float],
    waited_until: dict[str, float],
    answers: dict[str, int],
    grace: float,
) -> dict[str, Any]:
    """Per source, the keys not at the gateway when the benchmark stopped waiting for them:
    - refused: the revocation itself was answered with an error (nothing to invalidate: the
      key was never revoked), by status;
    - late: arrived in the end (within `grace` seconds after the last wait), how late and by
      which path (delivery_paths);
    - never: accepted and still not at the gateway after the grace, with their cut-offs."""
    paths = delivery_paths(stack)
    report: dict[str, Any] = {}
    for source, keys in keys_by_source.items():
        refused = [k for k in keys if not accepted_answer(answers.get(k))]
        taken = [k for k in keys if accepted_answer(answers.get(k))]
        late = [k for k in taken if k in seen and seen[k] > waited_until.get(k, float("inf"))]
        never = [k for k in taken if k not in seen]
        report[source] = {
            "refused": {
                str(s): sum(answers[k] == s for k in refused) for s in {answers[k] for k in refused}
            },
            "refused_yet_invalidated": sum(k in seen for k in refused),
            "late": len(late),
            "late_after_wait_ms": ms([seen[k] - waited_until[k] for k in late]),
            "late_by_path": {
                p: sum(paths.get(k) == p for k in late) for p in {paths.get(k, "?") for k in late}
            },
            "never": len(never),
            "never_cutoffs": cutoff_states(stack, never[:10]),
        }
    report["grace_seconds"] = grace
    return report


def delivery_paths(stack: Stack) -> dict[str, str]:
    """Which path completed each key's invalidation: `reaper` (the cut-off reaper's re-drive),
    `relay` (the invalidation task from a message the outbox relay sent again), `publish`
    (the task from the after-commit publish; also a message the relay sent first, when the
    web's publishing backlog was full, which the web logs as outbox.background_backlog_full)."""
    engine = make_engine(stack.settings)
    with engine.connect() as connection:
        reasons = dict(
            connection.execute(select(KeyInvalidation.key_id, KeyInvalidation.reason)).all()
        )
        messages = connection.execute(
            select(OutboxMessage.kwargs, OutboxMessage.attempts, OutboxMessage.last_error).where(
                OutboxMessage.task == "gateway.invalidate_keys"
            )
        ).all()
    engine.dispose()
    resent = {
        key
        for kwargs, attempts, error in messages
        if attempts > 1 or error
        for key in kwargs["key_ids"]
    }
    paths = {}
    for key_id, reason in reasons.items():
        key = str(key_id)
        paths[key] = "reaper" if reason == "re-driven" else "relay" if key in resent else "publish"
    return paths


def cutoff_states(stack: Stack, keys: list[str]) -> dict[str, Any]:
    """What odock-sync holds for these keys: none (no cut-off was written), or each cut-off's
    attempts, lease, last error and acknowledgement."""
    if not keys:
        return {}
    engine = make_engine(stack.settings)
    with engine.connect() as connection:
        rows = connection.execute(
            select(KeyCutoff).where(KeyCutoff.key_id.in_([uuid.UUID(k) for k in keys]))
        ).all()
    engine.dispose()
    states: dict[str, Any] = {key: "no cut-off" for key in keys}
    for row in rows:
        states[str(row.key_id)] = {
            "attempts": row.attempts,
            "next_attempt_at": str(row.next_attempt_at),
            "leased_until": str(row.leased_until),
            "last_error": row.last_error,
            "acknowledged_at": str(row.acknowledged_at),
        }
    return states


def scraped_histogram(stack: Stack) -> dict[str, Any]:
    """What /metrics serves of odock_time_to_kill_seconds: count and share <= 1 s by source."""
    text = requests.get(f"{stack.url}/metrics", timeout=10).text
    counts: dict[str, float] = {}
    within: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("odock_time_to_kill_seconds_count{"):
            source = line.split('source="')[1].split('"')[0]
            counts[source] = float(line.split()[-1])
        elif line.startswith("odock_time_to_kill_seconds_bucket{") and 'le="1.0"' in line:
            source = line.split('source="')[1].split('"')[0]
            within[source] = float(line.split()[-1])
    return {
        source: {"count": int(n), "share_within_1s": round(within.get(source, 0) / n, 4)}
        for source, n in sorted(counts.items())
        if n
    }


# ---------------------------------------------------------------- one backend


def backend_settings(
    backend: str, run: str, workdir: Path, poll: float | None
) -> tuple[Settings, str]:
    common: dict[str, Any] = {
        "secret_key": f"bench-secret-{run}-0123456789abcdef",
        "log_level": "WARNING",
        "celery_queue": f"odock-bench-{run}",
        "outbound_allow_loopback": True,  # the stand-in gateway and slapd are on loopback
    }
    if poll is not None:
        common["broker_poll_interval"] = poll
    if backend == "pg":
        base = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
        url = make_url(base.replace("postgresql://", "postgresql+psycopg://", 1))
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "odock_bench_{run}"'))
        admin.dispose()
        database = url.set(database=f"odock_bench_{run}").render_as_string(hide_password=False)
        broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
        return Settings(database_url=database, celery_broker_url=broker, **common), base
    return (
        Settings(
            database_url=f"sqlite:///{workdir / 'odock.sqlite3'}",
            celery_broker_url=f"sqla+sqlite:///{workdir / 'broker.sqlite3'}",
            **common,
        ),
        "",
    )


def drop_database(base: str, run: str) -> None:
    url = make_url(base.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "odock_bench_{run}" WITH (FORCE)'))
    admin.dispose()


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix=f"odock-ttk-{backend}-"))
    settings, pg_base = backend_settings(backend, run, workdir, args.poll_interval)
    stack: Stack | None = None
    slapd: Slapd | None = None
    try:
        world = seed(settings, args.count)
        stack = start_stack(
            settings,
            workdir,
            single_worker=args.single_worker,
            prefetch=args.urgent_prefetch,
            concurrency=args.urgent_concurrency,
            urgent_drains=args.urgent_drains,
        )
        scim_users(stack, world, args.count, args.background_users)
        slapd = start_slapd(workdir / "slapd")
        ldap_setup(stack, world, slapd, args.ldap_rounds * args.ldap_per_round)
        result: dict[str, Any] = {
            "backend": "PostgreSQL + Redis"
            if backend == "pg"
            else "embedded (SQLite + SQLAlchemy broker)",
            "broker_poll_interval": stack.settings.broker_poll_interval,
            "urgent_prefetch": args.urgent_prefetch or URGENT_PREFETCH,
            "urgent_concurrency": args.urgent_concurrency or URGENT_CONCURRENCY,
            "workers": "one worker, every queue"
            if args.single_worker
            else "bulk worker + urgent worker (draining too)"
            if args.urgent_drains
            else "bulk worker + urgent worker + drain worker",
            "count_per_push_source": args.count,
            "rate_per_second": args.rate,
            "background_scim_updates_per_second": args.background_rate,
            "background_senders": args.background_senders,
            "load_average_at_start": os.getloadavg(),
        }
        sent: dict[str, float] = {}
        answer_by_key: dict[str, int] = {}  # key -> the status its revocation was answered
        waited_until: dict[str, float] = {}  # key -> when the benchmark stopped waiting for it
        sources = [source for source in args.sources.split(",") if source in PUSH_SOURCES]
        statuses: dict[str, dict[int, int]] = {}
        answer_ms: dict[str, Any] = {}
        with Background(stack, world, args.background_rate, args.background_senders) as background:
            for source in sources:
                calls = [
                    revoke_request(source, world, target) for target, _key in world.targets[source]
                ]
                times, answered, answers = open_loop(stack, calls, args.rate)
                keys = [key for _target, key in world.targets[source]]
                sent.update(zip(keys, times, strict=True))
                answer_by_key.update(zip(keys, answers, strict=True))
                statuses[source] = {code: answers.count(code) for code in set(answers)}
                answer_ms[source] = ms([b - a for a, b in zip(times, answered, strict=True)])
                # a refused revocation revoked nothing: no invalidation to wait for
                wait_received(stack, [k for k in keys if accepted_answer(answer_by_key[k])], 120)
                waited_until.update(dict.fromkeys(keys, time.time()))
            moments = ldap_rounds(stack, world, slapd, args.ldap_rounds, args.ldap_per_round)
        waited_until.update(dict.fromkeys(moments, time.time()))
        keys_by_source = {s: [k for _t, k in world.targets[s]] for s in (*sources, "ldap")}
        accepted = [
            k
            for keys in keys_by_source.values()
            for k in keys
            if accepted_answer(answer_by_key.get(k))
        ]
        seen = wait_received(stack, accepted, timeout=args.grace)  # the stragglers' last chance
        result["answers"] = statuses
        result["answer_ms"] = answer_ms
        result["time_to_kill_ms"] = breakdown(stack, sent, seen, keys_by_source)
        result["not_received_in_time"] = stragglers(
            stack, keys_by_source, seen, waited_until, answer_by_key, args.grace
        )
        ldap_keys = [key for key in moments if key in seen]
        result["time_to_kill_ms"]["ldap"]["locked_in_directory_to_gateway"] = ms(
            [seen[k] - moments[k]["locked"] for k in ldap_keys]
        )
        result["time_to_kill_ms"]["ldap"]["sync_requested_to_gateway"] = ms(
            [seen[k] - moments[k]["requested"] for k in ldap_keys]
        )
        result["time_to_kill_ms"]["ldap"]["sync_requested_to_run_started"] = ms(
            run_waits(stack, sorted({m["requested"] for m in moments.values()}))
        )
        result["background_scim_update_ms"] = background.report()
        result["urgent_worker"] = urgent_work(stack)
        result["histogram_scraped"] = scraped_histogram(stack)
        result["load_average_at_end"] = os.getloadavg()
        return result
    finally:
        if stack is not None:
            stack.stop()
        if slapd is not None:
            slapd.stop()
        if pg_base:
            drop_database(pg_base, run)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["pg", "embedded", "both"], default="both")
    parser.add_argument("--count", type=int, default=1000, help="revocations per push source")
    parser.add_argument("--rate", type=float, default=10, help="revocations per second")
    parser.add_argument("--background-rate", type=float, default=20)
    parser.add_argument("--background-users", type=int, default=200)
    parser.add_argument("--background-senders", type=int, default=4)
    parser.add_argument("--ldap-rounds", type=int, default=20)
    parser.add_argument("--ldap-per-round", type=int, default=5)
    parser.add_argument("--single-worker", action="store_true")
    parser.add_argument(
        "--urgent-drains",
        action="store_true",
        help="no drain worker: the urgent worker's slots drain (as before the drain queue)",
    )
    parser.add_argument("--poll-interval", type=float, default=None)
    parser.add_argument("--urgent-prefetch", type=int, default=None)
    parser.add_argument("--urgent-concurrency", type=int, default=None)
    parser.add_argument("--sources", default=",".join(PUSH_SOURCES), help="push sources to run")
    parser.add_argument(
        "--grace",
        type=float,
        default=120,
        help="seconds to wait at the end for keys not yet at the gateway (reported as late)",
    )
    args = parser.parse_args()
    backends = ["pg", "embedded"] if args.backend == "both" else [args.backend]
    for backend in backends:  # each printed once done: a run cut short keeps what it measured
        print(json.dumps(run_backend(backend, args), indent=2), flush=True)


if __name__ == "__main__":
    main()
