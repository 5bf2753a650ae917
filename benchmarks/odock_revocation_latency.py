"""Revoked to rejected at the gateway, bridged to the stand-in Odock (PostgreSQL + Redis).

Each round revokes one person who holds one key made in the stand-in's store (and known to
odock-sync under the same id), then calls the stand-in gateway with that key's value every
2 ms until it answers 401. The clock starts just before the revocation's transaction and
stops at the first rejected call; in between: commit and after-commit publish of the key
command, the worker sending it to the store until acknowledged, the acknowledgement's commit
publishing the invalidation, the worker invalidating the gateway's Redis entry, and the next
call missing the cache and reading the revoked key from the store. Every key is in the
gateway's cache before its round, so a rejection can only come from the invalidation.

Everything is real and on loopback: odock-sync's PostgreSQL database and Redis broker (each
a scratch database / queue of its own), a Celery worker process in bridged mode, the
stand-in's management plane and gateway (tests/support/odock) with their own PostgreSQL
database and redis-server. Revocations run one after another, so each round measures the
path, not a queue.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python benchmarks/odock_revocation_latency.py [--count 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYTHONPATH", str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from models.actions import lifecycle  # noqa: E402
from models.actor import Actor  # noqa: E402
from models.db import SessionFactory, make_engine, make_session_factory  # noqa: E402
from models.entities import User, VirtualApiKey  # noqa: E402
from models.enums import KeyType  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402
from tests.support import factories  # noqa: E402
from tests.support.odock import OdockStandIn, start_stand_in  # noqa: E402
from tests.support.worker import start_worker  # noqa: E402
from worker.celery_app import configure_celery  # noqa: E402
from worker.outbox_relay import install_after_commit_relay  # noqa: E402

ACTOR = Actor.system("benchmark")
POLL = 0.002


@dataclass
class Holder:
    user_id: uuid.UUID
    key_id: uuid.UUID
    value: str


@dataclass
class Round:
    to_acknowledged: float
    to_invalidated: float
    to_rejected: float


def scratch_database(base_url: str) -> tuple[str, str, str]:
    url = make_url(base_url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"odock_bench_bridge_{uuid.uuid4().hex[:8]}"
    admin_url = url.set(database="postgres").render_as_string(hide_password=False)
    with create_engine(admin_url, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    return url.set(database=name).render_as_string(hide_password=False), admin_url, name


def drop(admin_url: str, name: str) -> None:
    with create_engine(admin_url, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def bridged_settings(database_url: str, broker_url: str, odock: OdockStandIn) -> Settings:
    return Settings(
        database_url=database_url,
        celery_broker_url=broker_url,
        celery_queue=f"odock-bench-bridge-{uuid.uuid4().hex[:6]}",
        secret_key="benchmark-secret-key-0123456789abcdef",
        log_level="WARNING",
        odock_mode="bridged",
        odock_management_url=odock.management_url,
        odock_management_token=odock.management_token,
        odock_command_secret=odock.command_secret,
        gateway_url=odock.gateway_url,
        gateway_secret=odock.gateway_secret,
    )


def make_holders(sessions: SessionFactory, odock: OdockStandIn, count: int) -> list[Holder]:
    """People with one key each, in the stand-in's store and odock-sync's view alike."""
    holders = []
    with sessions() as session:
        org = factories.make_org(session, "Bench")
        for n in range(count):
            user = factories.make_user(session, org, email=f"person-{n}@bench.example")
            key_id, value = odock.store.create_key(org.id, owner_user_id=user.id)
            stored = odock.store.key(key_id) or {}
            session.add(
                VirtualApiKey(
                    id=key_id,
                    organisation_id=org.id,
                    key_type=KeyType.USER,
                    owner_user_id=user.id,
                    name=stored["name"],
                    masked_value=stored["masked_value"],
                    version=stored["version"],
                )
            )
            holders.append(Holder(user.id, key_id, value))
        session.commit()
    return holders


def revoke_and_wait(sessions: SessionFactory, odock: OdockStandIn, holder: Holder) -> Round:
    started = time.time()
    with sessions() as session:
        lifecycle.revoke(session, user=session.get_one(User, holder.user_id), actor=ACTOR)
        session.commit()
    while odock.call(holder.value) != 401:
        if time.time() - started > 60:
            raise RuntimeError(f"key {holder.key_id} still accepted after 60 s")
        time.sleep(POLL)
    rejected = time.time()
    acknowledged = min(c.at for c in odock.commands_seen.for_key(holder.key_id) if c.status == 200)
    invalidated = min(odock.invalidations.times_for(str(holder.key_id)))
    return Round(acknowledged - started, invalidated - started, rejected - started)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(rounds: list[Round]) -> None:
    print(f"{len(rounds)} revocations, one at a time; milliseconds from the revocation")
    print(f"{'':34}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for label, values in (
        ("store acknowledged the command", [r.to_acknowledged for r in rounds]),
        ("gateway received the invalidation", [r.to_invalidated for r in rounds]),
        ("gateway rejected the key", [r.to_rejected for r in rounds]),
    ):
        figures = [percentile(values, q) * 1000 for q in (0.5, 0.9, 0.99)] + [max(values) * 1000]
        print(f"{label:34}" + "".join(f"{f:9.1f}" for f in figures))
    print(f"mean rejected: {statistics.fmean(r.to_rejected for r in rounds) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    database_url, admin_url, name = scratch_database(base)
    workdir = Path(tempfile.mkdtemp(prefix="odock-bench-"))
    odock = start_stand_in(odock_sync_database_url=database_url, workdir=workdir)
    worker = None
    try:
        settings = bridged_settings(database_url, broker, odock)
        engine = make_engine(settings)
        upgrade(engine)
        configure_celery(settings)
        sessions = make_session_factory(engine, odock_mode="bridged")
        install_after_commit_relay(sessions)
        holders = make_holders(sessions, odock, args.count)
        for holder in holders:
            assert odock.call(holder.value) == 200  # every key starts in the gateway's cache
        worker = start_worker(settings, log_dir=workdir)
        rounds = [revoke_and_wait(sessions, odock, holder) for holder in holders]
        report(rounds)
        engine.dispose()
    finally:
        if worker is not None:
            worker.stop()
        odock.stop()
        drop(admin_url, name)


if __name__ == "__main__":
    main()
