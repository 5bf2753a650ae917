"""Time from a revocation to the gateway's acknowledged invalidation, under faults.

Runs `odock-sync serve` (web, bulk and urgent workers, beat) on PostgreSQL (a database of its
own) with a redis-server of its own as the broker and the stand-in gateway of the tests
(tests/support/odock), then, per scenario, revokes a person with two keys through the admin API
and injects one fault (tests/support/cutoff_faults.py, the same scenarios the fault tests
assert on):

  none            no fault (the baseline)
  redis-blip      gateway answering 503 and a notification in a 30 s Celery retry, Redis
                  killed and restarted 3 s later, then the gateway recovers
  worker-kill     the gateway holds the call; SIGKILL to the urgent worker's main process
  gateway-down    the gateway answers 503 for --outage seconds (default 120)
  broker-down     Redis down when the admin revokes, back 3 s later

Per scenario it prints: the revocation's answer time, revocation -> last key's first 200 at the
gateway, the 200s per key (one is right), alarms and recoveries (CUTOFF_DEADLINE --deadline).

    .venv/bin/python benchmarks/cutoff_faults.py [--rounds 3] [--deadline 60] [--outage 120]
        [--scenarios none,redis-blip,worker-kill,broker-down,gateway-down]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.scratch import postgres_scratch  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402
from tests.support import cutoff_faults as faults  # noqa: E402
from tests.support.odock import start_stand_in  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.served import start_served  # noqa: E402

SCENARIOS = ("none", "redis-blip", "worker-kill", "broker-down", "gateway-down")


def run_scenario(name: str, context: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    served, stand_in, broker, sessions = (
        context["served"],
        context["stand_in"],
        context["broker"],
        context["sessions"],
    )
    stand_in.reset()
    with sessions() as session:
        leaver = faults.make_leaver(
            session, hook_url=context["hook_url"], secret_key=context["secret_key"]
        )
    if name == "none":
        outcome = faults.outcome(served, stand_in, sessions, leaver, faults.revoke(served, leaver))
    elif name == "redis-blip":
        outcome = faults.redis_blip_during_a_pending_retry(
            served, stand_in, broker, sessions, leaver
        )
    elif name == "worker-kill":
        outcome = faults.worker_killed_during_the_gateway_call(served, stand_in, sessions, leaver)
    elif name == "broker-down":
        outcome = faults.broker_down_during_the_revocation(
            served, stand_in, broker, sessions, leaver
        )
    else:
        outcome = faults.gateway_down(served, stand_in, sessions, leaver, outage=args.outage)
    alarm_ages = [e.after.get("oldest_age_seconds") for e in outcome.alarms]
    return {
        "scenario": name,
        "answered": outcome.answered_status,
        "answer_ms": round(outcome.answered_in * 1000, 1),
        "to_acknowledged_s": round(outcome.time_to_acknowledged, 2),
        "effective_per_key": sorted(len(t) for t in outcome.effective.values()),
        "alarms": len(outcome.alarms),
        "alarm_at_s": alarm_ages,
        "recoveries": len(outcome.recoveries),
        "web_answers_during_fault": sorted(set(outcome.web_answers_during_fault)),
    }


def summarise(rows: list[dict[str, Any]]) -> None:
    print(
        "\n| scenario | n | revocation answered (ms) p50 / max | revocation → acknowledged "
        "(s) p50 / max | 200s per key | alarms (at s) | recoveries |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in SCENARIOS:
        mine = [r for r in rows if r["scenario"] == name]
        if not mine:
            continue
        answers = [r["answer_ms"] for r in mine]
        acked = [r["to_acknowledged_s"] for r in mine]
        per_key = sorted({n for r in mine for n in r["effective_per_key"]})
        alarms = sum(r["alarms"] for r in mine)
        at = [a for r in mine for a in r["alarm_at_s"]]
        print(
            f"| {name} | {len(mine)} | {statistics.median(answers):.0f} / {max(answers):.0f} | "
            f"{statistics.median(acked):.2f} / {max(acked):.2f} | {per_key} | {alarms}"
            f"{' (' + ', '.join(f'{a:.1f}' for a in at) + ')' if at else ''} | "
            f"{sum(r['recoveries'] for r in mine)} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=60.0, help="CUTOFF_DEADLINE")
    parser.add_argument("--outage", type=float, default=120.0, help="gateway-down seconds")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    names = [n for n in args.scenarios.split(",") if n]
    run = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="odock-cutoff-"))
    scratch = ExitStack()
    database_url = scratch.enter_context(postgres_scratch(prefix="odock_cutoff"))
    secret_key = f"bench-secret-{run}-0123456789abcdef"
    engine = make_engine(Settings(database_url=database_url, secret_key=secret_key))
    upgrade(engine)
    sessions = make_session_factory(engine)
    stand_in = start_stand_in(odock_sync_database_url=database_url, workdir=workdir)
    broker = RedisServer(workdir).start()
    hook = _failing_hook()
    served = None
    rows: list[dict[str, Any]] = []
    print(f"load average at start {[round(x, 1) for x in os.getloadavg()]}", flush=True)
    try:
        env = faults.served_env(
            stand_in, secret_key=secret_key, queue=f"cutoff-{run}", deadline=args.deadline
        )
        served = start_served(
            workdir=workdir, database_url=database_url, broker_url=broker.url, env=env
        )
        context = {
            "served": served,
            "stand_in": stand_in,
            "broker": broker,
            "sessions": sessions,
            "hook_url": hook[1],
            "secret_key": secret_key,
        }
        for name in names:
            rounds = 1 if name == "gateway-down" else args.rounds
            for _ in range(rounds):
                if broker.process is None:
                    broker.start()
                row = run_scenario(name, context, args)
                print(json.dumps(row), flush=True)
                rows.append(row)
                time.sleep(2)
    finally:
        print(f"load average at end {[round(x, 1) for x in os.getloadavg()]}", flush=True)
        if served is not None:
            served.stop()
        hook[0].shutdown()
        broker.kill()
        stand_in.stop()
        engine.dispose()
        scratch.close()
    summarise(rows)


def _failing_hook() -> tuple[Any, str]:
    """A webhook receiver that always answers 503 (a notification keeps a retry pending)."""
    import threading

    from werkzeug import Request, Response
    from werkzeug.serving import make_server

    @Request.application
    def down(_request: Request) -> Response:
        return Response("down", status=503)

    server = make_server("127.0.0.1", 0, down, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/hooks/siem"


if __name__ == "__main__":
    main()
