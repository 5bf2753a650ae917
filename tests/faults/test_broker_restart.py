"""The bulk worker (the default queue only, two processes, as `serve` runs it) goes on taking
tasks after its redis-server is killed (SIGKILL) and started again on the same port, with every
CPU of the machine busy: one process held by a delivery whose receiver has not answered (an
acks_late task running over the restart), the other handing its retry's result up to the
worker when the broker dies (the retry's traceback makes it large: the pool's pipe gets it in
two writes).

Before worker/pool_results.py, a result half read by the event loop when the broker connection
dropped was lost: the worker counted that process busy with its finished task for good, took
no task while the held delivery ran (here the probes waited more than LIVENESS), and ran on one
process after it. The race is the machine's to win: the kill lands in the right few
milliseconds in most runs of this module, not in all; the worker logs
`worker.finishing_partial_result` when it does (and the fix applies).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from models.settings import Settings
from tests.support import factories as f
from tests.support.held_receiver import HeldReceiver, held_receiver
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, broker_client, send_notification, start_worker

pytestmark = pytest.mark.slow

# Every task sent after the restart runs within this: a liveness bound, not a latency (a
# probe takes milliseconds). Shorter than the held delivery, which may hold its process for
# HOLD_FOR from before the kill.
LIVENESS = 40.0
HOLD_FOR = 60.0  # NOTIFICATION_TIMEOUT: the held delivery's longest wait for its receiver
PROBES = 6


@pytest.fixture(scope="module")
def restart_settings(settings: Settings, broker: RedisServer) -> Settings:
    return settings.model_copy(
        update={
            "celery_broker_url": broker.url,
            "celery_queue": f"restart-{uuid.uuid4().hex[:8]}",
            "notification_timeout": HOLD_FOR,
            "notification_retry_base": 30.0,
            "notification_retry_max": 30.0,
        }
    )


@pytest.fixture
def bulk_worker(
    restart_settings: Settings, broker: RedisServer, tmp_path: Path
) -> Iterator[WorkerProcess]:
    if broker.process is None:
        broker.start()  # a test that failed while it was down
    worker = start_worker(
        restart_settings, log_dir=tmp_path, queues=[restart_settings.celery_queue], concurrency=2
    )
    yield worker
    worker.kill()


@pytest.fixture
def busy_cpus() -> Iterator[None]:
    """Twice as many CPU-bound processes as this process may run on: the worker's processes
    wait their turns, as on a loaded machine."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(2 * len(os.sched_getaffinity(0)))
    ]
    yield
    for burner in burners:
        burner.kill()
        burner.wait()


def active(settings: Settings, worker: WorkerProcess) -> list[dict[str, Any]]:
    """What the worker counts as running (`celery inspect active`)."""
    app = broker_client(settings)
    # A connection of its own: one kombu pooled before the restart is closed by now.
    with app.connection_for_write() as connection:
        inspect = app.control.inspect([worker.node_name], timeout=5, connection=connection)
        answer = inspect.active() or {}
    app.close()
    return list(answer.get(worker.node_name, [{"unanswered": True}]))


def ran(worker: WorkerProcess, task_id: str) -> bool:
    return re.search(rf"{task_id}\] succeeded", worker.log()) is not None


def hold_both_processes(
    session: Session, settings: Settings, receiver: HeldReceiver, down_url: str
) -> None:
    """One delivery held by its receiver, one answered 503 (it retries in 30 s)."""
    org = f.make_org(session)
    for name, target in (("held", receiver.url), ("down", down_url)):
        f.make_hook(session, org.id, target, secret_key=settings.secret_key, name=name)
    session.commit()
    send_notification(settings, org.id, "restart.before")


def restart(broker: RedisServer, worker: WorkerProcess, *, down_for: float) -> None:
    connected = worker.log().count("Connected to redis")
    broker.kill()
    time.sleep(down_for)
    broker.start()
    wait_until(
        lambda: worker.log().count("Connected to redis") > connected,
        timeout=LIVENESS,
        what="the worker to reconnect",
        explain=worker.log,
    )


@pytest.mark.parametrize(
    "restarts,down_for",
    [(1, 0.0), (1, 3.0), (2, 0.5)],
    ids=["back-at-once", "down-3s", "twice"],
)
def test_the_bulk_worker_takes_new_tasks_after_redis_restarts(
    session, restart_settings, broker, bulk_worker, busy_cpus, httpserver, restarts, down_for
):
    httpserver.expect_request("/hooks/down").respond_with_data("down", status=503)
    with held_receiver() as receiver:
        hold_both_processes(session, restart_settings, receiver, httpserver.url_for("/hooks/down"))
        assert receiver.arrived.wait(LIVENESS), bulk_worker.log()
        # The kill follows the retry's log line by milliseconds: its result is on its way up.
        wait_until(
            lambda: "Retry in 30" in bulk_worker.log(),
            timeout=LIVENESS,
            interval=0.001,
            what="the 503's retry",
        )
        for _ in range(restarts):
            restart(broker, bulk_worker, down_for=down_for)
        probe_org = f.make_org(session)
        session.commit()
        probes = [
            send_notification(restart_settings, probe_org.id, f"probe.{n}") for n in range(PROBES)
        ]

        wait_until(
            lambda: all(ran(bulk_worker, task_id) for task_id in probes),
            timeout=LIVENESS,
            interval=0.2,
            what="every task sent after the restart to run while a delivery is held",
            explain=lambda: f"active: {active(restart_settings, bulk_worker)}",
        )
        receiver.answer.set()
        # Nothing finished is counted running (the held delivery ends once answered).
        wait_until(
            lambda: active(restart_settings, bulk_worker) == [],
            timeout=LIVENESS,
            interval=0.5,
            what="the worker to count no task running",
            explain=lambda: f"active: {active(restart_settings, bulk_worker)}",
        )
    assert bulk_worker.process.poll() is None, bulk_worker.log()[-4000:]
