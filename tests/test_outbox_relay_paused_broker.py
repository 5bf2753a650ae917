"""The periodic outbox relay and a paused broker (a redis-server of the test's own, SIGSTOP:
it keeps its connections and answers nothing, then SIGCONT).

The relay claims its messages in a short transaction and publishes them outside it: while it
waits on the paused broker, another transaction updates those rows and inserts new ones at
once (PostgreSQL: FOR UPDATE NOWAIT finds no lock; SQLite: BEGIN IMMEDIATE with no busy wait
finds the file free). Before, it held the rows locked (FOR UPDATE; on SQLite the whole file)
for as long as the broker did not answer, and every writer of them waited. Once the broker
answers again every message reaches it, once or more (at least once; tasks are idempotent)."""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, insert, select

from models.base import utcnow
from models.entities import OutboxMessage
from models.settings import Settings
from tests.support.no_wait import write_without_waiting
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_until
from worker.outbox_relay import TASK_ID_PREFIX

TASK = "tokens.note_expired"  # idempotent, and no worker consumes this test's queue


@pytest.fixture
def paused_broker(
    settings: Settings, tmp_path, request: pytest.FixtureRequest
) -> Iterator[tuple[RedisServer, Settings]]:
    """The process publishing to a redis-server of this test's own, on a queue of its own,
    giving up on it after the test's BROKER_PUBLISH_TIMEOUT (its parameter)."""
    from worker.celery_app import configure_celery
    from worker.runtime import init_runtime

    server = RedisServer(tmp_path).start()
    own = settings.model_copy(
        update={
            "celery_broker_url": server.url,
            "celery_queue": f"paused-{uuid.uuid4().hex[:8]}",
            "broker_publish_timeout": request.param,
        }
    )
    configure_celery(own)
    init_runtime(own)
    try:
        yield server, own
    finally:
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGCONT)  # a test that failed while it was paused
        server.kill()
        configure_celery(settings)
        init_runtime(settings)


def _pending(engine: Engine, count: int) -> list[int]:
    """Messages committed and never published (as if the broker was down at commit)."""
    now = utcnow()
    rows = [
        {"task": TASK, "kwargs": {"n": n}, "available_at": now, "attempts": 0} for n in range(count)
    ]
    with engine.begin() as connection:
        return list(connection.scalars(insert(OutboxMessage).returning(OutboxMessage.id), rows))


def _connected_to(port: int) -> bool:
    """This process holds an established TCP connection to `port` (the relay publishing)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def _published_ids(server: RedisServer, queue: str) -> set[int]:
    client = server.client()
    try:
        found = set()
        for raw in client.lrange(queue, 0, -1):
            task_id = json.loads(raw)["headers"]["id"]
            found.add(int(task_id.removeprefix(TASK_ID_PREFIX)))
        return found
    finally:
        client.close()


@pytest.mark.parametrize("paused_broker", [60.0], indirect=True)  # waits until it resumes
def test_a_relay_waiting_on_a_paused_broker_holds_no_lock_and_loses_nothing(
    session, engine, paused_broker
):
    from worker.outbox_relay import relay_outbox

    server, own = paused_broker
    assert server.process is not None
    ids = _pending(engine, 3)
    out: dict[str, object] = {}

    def relay() -> None:
        try:
            out["published"] = relay_outbox()
        except BaseException as exc:  # reported by the test
            out["error"] = exc

    os.kill(server.process.pid, signal.SIGSTOP)
    relaying = threading.Thread(target=relay, daemon=True)
    try:
        relaying.start()
        wait_until(lambda: _connected_to(server.port), timeout=30, what="the relay to publish")
        assert relaying.is_alive(), out  # waiting on the paused broker
        write_without_waiting(engine, "outbox", ids, assignment="request_id = 'touched'")
        _pending(engine, 1)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        relaying.join(90)
    assert "error" not in out, out

    every = {*ids, *_all_ids(engine)}

    def all_published() -> bool:
        relay_outbox()  # what the paused broker was not given (or the message inserted meanwhile)
        return every <= _published_ids(server, own.celery_queue)

    wait_until(all_published, timeout=60, what="every message published once the broker resumed")


def _all_ids(engine: Engine) -> set[int]:
    with engine.connect() as connection:
        return set(connection.scalars(select(OutboxMessage.id)))


@pytest.mark.parametrize("paused_broker", [0.5], indirect=True)
def test_a_relay_gives_up_on_a_paused_broker_and_hands_its_messages_back(
    session, engine, paused_broker
):
    """The relay's publish is bounded: it gives up on the paused broker (before, a worker's
    connection waited on it without limit, and the relay with it), hands every message it
    claimed back (not dispatched, the error kept) and ends; the next relay after the broker
    resumed publishes them all."""
    from worker.outbox_relay import relay_outbox

    server, own = paused_broker
    assert server.process is not None
    ids = _pending(engine, 3)
    out: dict[str, object] = {}
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        relaying = threading.Thread(target=lambda: out.update(published=relay_outbox()))
        relaying.daemon = True
        relaying.start()
        relaying.join(60)  # a bound against hanging, far beyond the publish timeout
        assert not relaying.is_alive(), "the relay waited on the paused broker"
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    assert out == {"published": 0}, out
    with engine.connect() as connection:
        rows = connection.execute(
            select(OutboxMessage.dispatched_at, OutboxMessage.last_error).where(
                OutboxMessage.id.in_(ids)
            )
        ).all()
    assert [row.dispatched_at for row in rows] == [None] * 3
    assert all(row.last_error for row in rows), rows

    def all_published() -> bool:
        relay_outbox()
        return set(ids) <= _published_ids(server, own.celery_queue)

    wait_until(all_published, timeout=60, what="every message published once the broker resumed")
