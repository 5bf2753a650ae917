"""Load benchmark of the signed generic events receiver, on loopback, bounded.

Runs, in one go, against the machine's PostgreSQL and Redis (DATABASE_URL / CELERY_BROKER_URL,
defaulting to the local servers) with a database and a queue of its own:

  1. a bare Flask endpoint under the same gunicorn settings (2 workers x 8 threads), answering
     without storing: the ceiling;
  2. the real receiver (gunicorn, same settings) and a Celery worker applying the events, at
     the lower CPU priority `odock-sync serve` gives it.

Steady phase: COUNT deliveries (10% duplicates, 5% bad signatures) at RATE per second, open
loop; the answer time is measured from each request's scheduled start. Then the end-to-end
lag (received -> applied) and the exactly-once checks. Max phase: MAX_COUNT deliveries sent
by CONCURRENCY closed-loop clients to each server: sustained requests per second.

    .venv/bin/python benchmarks/idp_events_load.py [--count 10000] [--rate 500] [--threads 8]

With --receiver-alone the worker starts only once the steady phase is sent, so that phase
shows the receiver's own answer times with nothing applied beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import cpu  # noqa: E402
from cli.serve import GUNICORN_CONFIG, WORKER_NICENESS, celery_worker_command  # noqa: E402
from connectors import signed_webhooks  # noqa: E402
from models.actions import event_hooks, mass_change, organisations  # noqa: E402
from models.actor import Actor  # noqa: E402
from models.base import new_id, utcnow  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.entities import AuditEvent, IdentityLink, ReceivedDelivery, User  # noqa: E402
from models.enums import Role, Source, UserStatus  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402
from worker.celery_app import worker_queues  # noqa: E402

SETUP = Actor(Source.ADMIN, "benchmark")


@dataclass
class Delivery:
    kind: str  # "new", "duplicate", "bad"
    msg_id: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Answer:
    status: int
    seconds: float


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(settings: Settings) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name, value in settings.model_dump().items():
        env[name.upper()] = str(value)
    return env


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def gunicorn(
    app: str, port: int, env: dict[str, str], log: Path, threads: int
) -> subprocess.Popen[bytes]:
    """The same settings for both endpoints: 2 workers, sync or with `threads` threads each."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        "2",
        "--worker-class",
        "gthread" if threads > 1 else "sync",
        "--threads",
        str(threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--config",
        GUNICORN_CONFIG,
        app,
    ]
    process = start(command, env, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not start: {log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def start_worker(
    settings: Settings, env: dict[str, str], logs: Path, concurrency: int
) -> subprocess.Popen[bytes]:
    """One Celery worker at the lower CPU priority that `odock-sync serve` gives it."""
    command = celery_worker_command(
        worker_queues(settings.celery_queue), concurrency, loglevel="WARNING"
    )
    return start(["nice", "-n", str(WORKER_NICENESS), *command], env, logs / "worker.log")


# ---------------------------------------------------------------- data


def prepare_database(base_url: str, name: str) -> str:
    url = make_url(base_url.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(base_url: str, name: str) -> None:
    url = make_url(base_url.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed(settings: Settings, users: int) -> tuple[str, str]:
    """An organisation with a signing secret and `users` people linked to external ids."""
    engine = make_engine(settings)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions() as session:
        org = organisations.create_organisation(session, name="Bench", slug="bench", actor=SETUP)
        # Thousands of revocations on purpose: the mass-change gate would hold them.
        mass_change.set_thresholds(session, organisation=org, actor=SETUP, enabled=False)
        secret = event_hooks.add_signing_secret(
            session, organisation=org, secret_key=settings.secret_key, actor=SETUP
        ).secret
        now = utcnow()
        rows, links = [], []
        for i in range(users):
            user_id = new_id()
            email = f"bench{i}@example.com"
            rows.append(
                {
                    "id": user_id,
                    "organisation_id": org.id,
                    "name": f"Bench User {i}",
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
                    "source": Source.EVENTS,
                    "external_id": f"bench-{i}",
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
            )
        session.execute(insert(User), rows)
        session.execute(insert(IdentityLink), links)
        session.commit()
    engine.dispose()
    return "bench", secret


def build_deliveries(secret: str, count: int, *, tag: str, event_type: str) -> list[Delivery]:
    """`count` sends: 85% new, 10% re-sends of an earlier one, 5% signed with a wrong key."""
    rng = random.Random(7)
    wrong = signed_webhooks.new_signing_secret()
    sent: list[Delivery] = []
    originals: list[Delivery] = []
    user = 0
    for i in range(count):
        roll = rng.random()
        if roll < 0.10 and len(originals) > 50:
            original = originals[rng.randrange(0, len(originals) - 20)]
            sent.append(Delivery("duplicate", original.msg_id, original.body, original.headers))
            continue
        bad = roll < 0.15
        msg_id = f"{'bad' if bad else 'msg'}_{tag}_{i}"
        event = {
            "id": f"evt_{tag}_{i}",
            "type": event_type,
            "occurred_at": utcnow().isoformat(),
            "user": {"external_id": f"bench-{user}"},
            "changes": {"name": f"Bench User {user} ({tag})"},
        }
        body = json.dumps(event).encode()
        headers = signed_webhooks.sign(wrong if bad else secret, msg_id=msg_id, body=body)
        delivery = Delivery("bad" if bad else "new", msg_id, body, headers)
        if not bad:
            user += 1
            originals.append(delivery)
        sent.append(delivery)
    return sent


# ---------------------------------------------------------------- load


async def post(port: int, path: str, delivery: Delivery) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = "".join(f"{name}: {value}\r\n" for name, value in delivery.headers.items())
    writer.write(
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(delivery.body)}\r\n"
            f"Connection: close\r\n{head}\r\n"
        ).encode()
        + delivery.body
    )
    await writer.drain()
    data = await reader.read()
    writer.close()
    return int(data[9:12])


async def open_loop(port: int, path: str, deliveries: list[Delivery], rate: float) -> list[Answer]:
    loop = asyncio.get_running_loop()
    start_at = loop.time() + 0.2
    answers: list[Answer | None] = [None] * len(deliveries)

    async def one(index: int, due: float) -> None:
        try:
            status = await post(port, path, deliveries[index])
        except OSError:
            status = 0
        answers[index] = Answer(status, loop.time() - due)

    tasks = []
    for index in range(len(deliveries)):
        due = start_at + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    return [a for a in answers if a is not None]


async def closed_loop(port: int, path: str, deliveries: list[Delivery], clients: int) -> float:
    queue = iter(deliveries)

    async def client() -> None:
        for delivery in queue:
            await post(port, path, delivery)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return len(deliveries) / (time.perf_counter() - started)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(answers: list[Answer]) -> dict[str, Any]:
    ms = [a.seconds * 1000 for a in answers]
    statuses: dict[int, int] = {}
    for a in answers:
        statuses[a.status] = statuses.get(a.status, 0) + 1
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "statuses": dict(sorted(statuses.items())),
    }


def read_cpu(
    parts: dict[str, subprocess.Popen[bytes]], database: str | None = None
) -> dict[str, dict[int, float]]:
    """CPU so far of each part (a process and its session), the database's server processes
    and this process, the load generator."""
    pids = {name: cpu.session_pids(process.pid) for name, process in parts.items()}
    pids["load_generator"] = [os.getpid()]
    if database is not None:
        pids["database"] = cpu.database_pids(database)
    return {name: cpu.cpu_by_pid(part) for name, part in pids.items()}


def cpu_per_delivery(
    before: dict[str, dict[int, float]],
    parts: dict[str, subprocess.Popen[bytes]],
    started: float,
    count: int,
    database: str | None = None,
) -> dict[str, Any]:
    """Milliseconds of CPU per delivery sent, by part, since `before`, and the cores in use:
    what the machine spends while the steady phase is sent."""
    after = read_cpu(parts, database)
    used = {name: cpu.used_between(before.get(name, {}), after[name]) for name in after}
    return {
        "ms_per_delivery": {
            name: round(seconds * 1000 / count, 3) for name, seconds in used.items()
        },
        "cores_busy": round(sum(used.values()) / (time.monotonic() - started), 2),
    }


# ---------------------------------------------------------------- checks


def wait_processed(settings: Settings, expected: int, timeout: float) -> dict[str, Any]:
    """Seconds until every stored delivery is processed (or how many were, at the timeout)."""
    engine = make_engine(settings)
    started = time.monotonic()
    done = 0
    try:
        while time.monotonic() - started < timeout:
            with engine.connect() as connection:
                done = connection.scalar(
                    select(func.count())
                    .select_from(ReceivedDelivery)
                    .where(ReceivedDelivery.status == "processed")
                )
            if done >= expected:
                break
            time.sleep(0.5)
    finally:
        engine.dispose()
    return {"seconds": round(time.monotonic() - started, 1), "processed": done, "of": expected}


def checks(
    settings: Settings, deliveries: list[Delivery], accepted: set[str], tag: str
) -> dict[str, Any]:
    """Stored exactly the deliveries answered 202, each applied once; bad ones never."""
    engine = make_engine(settings)
    new_ids = {d.msg_id for d in deliveries if d.kind == "new"}
    bad_ids = {d.msg_id for d in deliveries if d.kind == "bad"}
    with engine.connect() as connection:
        stored = dict(
            connection.execute(
                select(ReceivedDelivery.delivery_id, ReceivedDelivery.applied_count).where(
                    ReceivedDelivery.delivery_id.like(f"%\\_{tag}\\_%")
                )
            ).all()
        )
        lags = [
            row[0] or 0
            for row in connection.execute(
                select(ReceivedDelivery.lag_ms).where(
                    ReceivedDelivery.delivery_id.like(f"msg\\_{tag}\\_%"),
                    ReceivedDelivery.lag_ms.is_not(None),
                )
            )
        ]
        renames = connection.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "user.updated", AuditEvent.source == Source.EVENTS)
        )
    engine.dispose()
    return {
        "new_sent": len(new_ids),
        "duplicates_sent": sum(1 for d in deliveries if d.kind == "duplicate"),
        "bad_sent": len(bad_ids),
        "accepted_202": len(accepted),
        "stored": len(stored),
        "stored_equals_accepted": set(stored) == accepted,
        "bad_stored": len(bad_ids & set(stored)),
        "applied_events": sum(stored.values()),
        "user_updated_audit_events": renames,
        "applied_exactly_once": sum(stored.values()) == len(accepted) == renames,
        "lag_ms": {"p50": percentile(lags, 50), "p99": percentile(lags, 99), "max": max(lags)}
        if lags
        else None,
    }


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--max-count", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="per gunicorn worker; 1 = sync")
    parser.add_argument("--drain-timeout", type=float, default=420)
    parser.add_argument(
        "--receiver-alone",
        action="store_true",
        help="start the worker only once the steady phase is sent: the receiver's own answer times",
    )
    args = parser.parse_args()

    base_db = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    run = uuid.uuid4().hex[:8]
    db_name = f"odock_bench_{run}"
    logs = Path(os.environ.get("BENCH_LOG_DIR", f"/tmp/odock-bench-{run}"))
    logs.mkdir(parents=True, exist_ok=True)
    database_url = prepare_database(base_db, db_name)
    settings = Settings(
        database_url=database_url,
        celery_broker_url=broker,
        celery_queue=f"odock-bench-{run}",
        secret_key=f"bench-secret-{run}-0123456789abcdef",
        log_level="WARNING",
        broker_poll_interval=0.1,
    )
    env = environment(settings)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        slug, secret = seed(settings, users=args.count + args.max_count)
        path = f"/hooks/events/{slug}"
        steady = build_deliveries(secret, args.count, tag="steady", event_type="user.updated")
        burst = build_deliveries(secret, args.max_count, tag="max", event_type="bench.noop")
        bare_burst = build_deliveries(secret, args.max_count, tag="bare", event_type="bench.noop")

        bare_port, real_port = free_port(), free_port()
        processes.append(
            gunicorn(
                "benchmarks.bare_app:create_bare_app()",
                bare_port,
                env,
                logs / "bare.log",
                args.threads,
            )
        )
        processes.append(
            gunicorn("webhooks.app:create_app()", real_port, env, logs / "web.log", args.threads)
        )
        if not args.receiver_alone:
            processes.append(start_worker(settings, env, logs, args.worker_concurrency))
        time.sleep(3)  # let the worker connect

        results: dict[str, Any] = {
            "count": args.count,
            "rate": args.rate,
            "cpus": os.cpu_count(),
            "gunicorn": f"2 workers x {args.threads} threads" if args.threads > 1 else "2 sync",
            "worker_during_steady_phase": not args.receiver_alone,
            "load_average_at_start": os.getloadavg(),
        }
        bare, real = processes[0], processes[1]
        worker_parts = {} if args.receiver_alone else {"worker": processes[2]}
        before = read_cpu({"web": bare})
        started = time.monotonic()
        results["bare_steady"] = summary(asyncio.run(open_loop(bare_port, path, steady, args.rate)))
        results["bare_steady"]["cpu"] = cpu_per_delivery(
            before, {"web": bare}, started, len(steady)
        )
        before = read_cpu({"web": real, **worker_parts}, db_name)
        started = time.monotonic()
        answers = asyncio.run(open_loop(real_port, path, steady, args.rate))
        results["real_steady"] = summary(answers)
        sent_for = time.monotonic() - started
        results["real_steady"]["cpu"] = cpu_per_delivery(
            before, {"web": real, **worker_parts}, started, len(steady), db_name
        )
        if args.receiver_alone:  # the events wait for the worker until every one is answered
            processes.append(start_worker(settings, env, logs, args.worker_concurrency))
        accepted = {d.msg_id for d, a in zip(steady, answers, strict=True) if a.status == 202}
        results["real_steady"]["drain_after_last_send"] = wait_processed(
            settings, len(accepted), timeout=args.drain_timeout
        )
        results["real_steady"]["send_duration_s"] = round(sent_for, 2)
        results["exactly_once"] = checks(settings, steady, accepted, "steady")

        results["bare_max_rps"] = round(
            asyncio.run(closed_loop(bare_port, path, bare_burst, args.concurrency)), 1
        )
        results["real_max_rps"] = round(
            asyncio.run(closed_loop(real_port, path, burst, args.concurrency)), 1
        )
        results["max_ratio"] = round(results["real_max_rps"] / results["bare_max_rps"], 3)
        results["load_average_at_end"] = os.getloadavg()
        print(json.dumps(results, indent=2))
    finally:
        for process in reversed(processes):
            stop(process)
        drop_database(base_db, db_name)


if __name__ == "__main__":
    main()
