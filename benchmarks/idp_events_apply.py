"""What applying stored IdP event deliveries costs the worker, per event, in one process.

For each kind of event, COUNT stored deliveries (one event each, each about its own user) are
applied twice on fresh copies of the same data:

  - one by one: `process_delivery` per delivery, a savepoint per event, COUNT / 200
    transactions (the path re-processing takes, and what the drain did before batching);
  - batched: `process_received` per claimed batch of 200, as the drain applies them.

Printed per event: wall time, the worker's CPU and, when the database runs on this machine,
the CPU of its server processes (read from /proc). The ratio is taken within the run.

    .venv/bin/python benchmarks/idp_events_apply.py [--count 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import cpu  # noqa: E402
from benchmarks.idp_events_load import drop_database, prepare_database, seed  # noqa: E402
from models.actions import idp_events  # noqa: E402
from models.actions.deliveries import Incoming, store_deliveries  # noqa: E402
from models.db import SessionFactory, make_engine, make_session_factory  # noqa: E402
from models.entities import Organisation, ReceivedDelivery  # noqa: E402
from models.settings import Settings  # noqa: E402

Applier = Callable[[Session, list[ReceivedDelivery]], None]

EVENTS: dict[str, Callable[[int], dict[str, Any]]] = {
    "user.updated (profile)": lambda i: {"changes": {"name": f"Renamed {i}"}},
    "user.deactivated (revocation)": lambda i: {},
    "bench.noop (ignored type)": lambda i: {},
}


def store(sessions: SessionFactory, slug: str, kind: str, count: int) -> uuid.UUID:
    event_type = kind.split()[0]
    with sessions() as session:
        organisation_id = session.scalars(
            select(Organisation.id).where(Organisation.slug == slug)
        ).one()
        incoming = [
            Incoming(
                organisation_id,
                idp_events.CHANNEL_EVENTS,
                f"msg_{i}",
                {
                    "id": f"evt_{i}",
                    "type": event_type,
                    "occurred_at": "2026-11-28T00:00:00+00:00",
                    "user": {"external_id": f"bench-{i}"},
                    **EVENTS[kind](i),
                },
            )
            for i in range(count)
        ]
        store_deliveries(session.connection(), incoming)
        session.commit()
    return organisation_id


def one_by_one(session: Session, deliveries: list[ReceivedDelivery]) -> None:
    for delivery in deliveries:
        idp_events.process_delivery(session, delivery=delivery)


def drain(sessions: SessionFactory, organisation_id: uuid.UUID, apply: Applier) -> int:
    """Claim and apply the organisation's deliveries a batch per transaction, as the drain."""
    done = 0
    while True:
        with sessions() as session:
            deliveries = idp_events.claim_received(session, organisation_id)
            apply(session, deliveries)
            session.commit()
        done += len(deliveries)
        if not deliveries:
            return done


def measure(base_url: str, kind: str, count: int, apply: Applier) -> dict[str, Any]:
    name = f"odock_apply_{uuid.uuid4().hex[:8]}"
    settings = Settings(
        database_url=prepare_database(base_url, name),
        secret_key="benchmark-secret-0123456789abcdef",
        log_level="WARNING",
    )
    try:
        slug, _secret = seed(settings, users=count)
        engine = make_engine(settings)
        sessions = make_session_factory(engine)
        organisation_id = store(sessions, slug, kind, count)
        server_before = cpu.cpu_by_pid(cpu.database_pids(name))
        worker, wall = time.process_time(), time.perf_counter()
        applied = drain(sessions, organisation_id, apply)
        worker, wall = time.process_time() - worker, time.perf_counter() - wall
        server_after = cpu.cpu_by_pid(cpu.database_pids(name))
        engine.dispose()
    finally:
        drop_database(base_url, name)
    assert applied == count, (applied, count)
    server = cpu.used_between(server_before, server_after) if server_after else None
    return {
        "wall_ms": round(wall * 1000 / count, 3),
        "worker_cpu_ms": round(worker * 1000 / count, 3),
        "database_cpu_ms": None if server is None else round(server * 1000 / count, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2_000)
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    results: dict[str, Any] = {"count": args.count, "load_average_at_start": os.getloadavg()}
    for kind in EVENTS:
        before = measure(base_url, kind, args.count, one_by_one)
        after = measure(base_url, kind, args.count, idp_events.process_received)
        results[kind] = {
            "one_by_one_per_event": before,
            "batched_per_event": after,
            "worker_cpu_ratio": round(before["worker_cpu_ms"] / after["worker_cpu_ms"], 2),
            "wall_ratio": round(before["wall_ms"] / after["wall_ms"], 2),
        }
    results["load_average_at_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
