"""The embedded broker (worker.sqlite_broker) on a SQLite file: a message taken leaves the
table, and one taken but not acknowledged comes back."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from kombu import Connection
from sqlalchemy import create_engine, event, text

from worker import sqlite_broker
from worker.celery_app import bound_publishing, celery_app


def stored(broker: Path) -> int:
    engine = create_engine(f"sqlite:///{broker}")
    with engine.connect() as connection:
        count = int(connection.scalar(text("SELECT count(*) FROM kombu_message")) or 0)
    engine.dispose()
    return count


def test_a_taken_message_leaves_the_table_and_an_unacknowledged_one_comes_back(tmp_path: Path):
    """kombu kept every taken message, marked invisible, and each poll of any queue scanned
    past all of them under the write lock: the embedded broker slowed as it worked."""
    sqlite_broker.register()
    broker = tmp_path / "broker.sqlite3"
    with Connection(f"sqla+sqlite:///{broker}") as kombu:
        queue = kombu.SimpleQueue("q")
        for n in range(3):
            queue.put({"n": n})
        first = queue.get(timeout=5)
        first.ack()
        second = queue.get(timeout=5)
        assert (first.payload, second.payload) == ({"n": 0}, {"n": 1})
        assert stored(broker) == 1  # only the one not taken yet
        second.requeue()  # taken, not acknowledged: put back
        again = [queue.get(timeout=5) for _ in range(2)]
        assert sorted(message.payload["n"] for message in again) == [1, 2]
        assert stored(broker) == 0
        for message in again:
            message.ack()
        queue.close()


def test_messages_an_older_version_kept_are_deleted_when_the_broker_is_opened(tmp_path: Path):
    sqlite_broker.register()
    broker = tmp_path / "broker.sqlite3"
    with Connection(f"sqla+sqlite:///{broker}") as kombu:
        kombu.SimpleQueue("q").put({"n": 0})
    engine = create_engine(f"sqlite:///{broker}")
    with engine.begin() as connection:  # as kombu left them: taken, kept, invisible
        connection.execute(text("UPDATE kombu_message SET visible = 0"))
    engine.dispose()
    sqlite_broker.Channel._engines.clear()  # as a process starting anew

    with Connection(f"sqla+sqlite:///{broker}") as kombu:
        queue = kombu.SimpleQueue("q")
        queue.put({"n": 1})
        message = queue.get(timeout=5)
        message.ack()
        assert message.payload == {"n": 1}
        queue.close()
    assert stored(broker) == 0


def test_the_webs_publishing_bounds_leave_the_embedded_broker_working(tmp_path: Path):
    """The web bounds every broker read and write (a blackholed Redis); kombu's SQLAlchemy
    transport hands each option to create_engine, which refused the socket ones: on the
    embedded default no request could publish, and everything waited for the outbox relay."""
    sqlite_broker.register()
    broker = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    conf = celery_app.conf
    kept = (conf.broker_write_url, conf.broker_transport_options)
    try:
        conf.broker_write_url, conf.broker_transport_options = broker, {"max_retries": 0}
        bound_publishing(1.0)
        with Connection(broker, transport_options=conf.broker_transport_options) as kombu:
            kombu.SimpleQueue("q").put({"n": 0})
    finally:
        conf.broker_write_url, conf.broker_transport_options = kept
    assert stored(tmp_path / "broker.sqlite3") == 1


def test_a_queue_another_process_declared_first_is_taken_not_a_crash(tmp_path: Path):
    """A worker and a beat starting together on a fresh broker file both found no queue row
    and both inserted one: the loser died on `UNIQUE constraint failed: kombu_queue.name`.
    Here the other process's insert lands between this channel's look and its own insert."""
    sqlite_broker.register()
    broker = tmp_path / "broker.sqlite3"
    with Connection(f"sqla+sqlite:///{broker}") as kombu:
        channel = kombu.default_channel
        other_process = create_engine(f"sqlite:///{broker}")

        def declare_first(*_: object) -> None:
            with other_process.begin() as connection:
                connection.execute(text("INSERT INTO kombu_queue (name) VALUES ('raced')"))

        event.listen(channel.session, "before_flush", declare_first, once=True)
        queue = kombu.SimpleQueue("raced")
        queue.put({"n": 0})
        message = queue.get(timeout=5)
        message.ack()
        assert message.payload == {"n": 0}
        queue.close()
        other_process.dispose()
    engine = create_engine(f"sqlite:///{broker}")
    with engine.connect() as connection:
        names = connection.scalars(text("SELECT name FROM kombu_queue")).all()
    engine.dispose()
    assert names.count("raced") == 1


def _publish_at_once(broker: str, start: Any) -> None:
    sqlite_broker.register()
    sqlite_broker.Channel._engines.clear()  # forked: a process of its own
    start.wait()
    with Connection(broker) as kombu:
        kombu.SimpleQueue("together").put({"n": 1})


def test_processes_opening_a_fresh_broker_file_together_all_publish(tmp_path: Path):
    """The same race between real processes: tables and queue created by whoever is first."""
    context = multiprocessing.get_context("fork")
    for attempt in range(3):
        broker = tmp_path / f"broker-{attempt}.sqlite3"
        start = context.Barrier(4)
        publishers = [
            context.Process(target=_publish_at_once, args=(f"sqla+sqlite:///{broker}", start))
            for _ in range(4)
        ]
        for publisher in publishers:
            publisher.start()
        for publisher in publishers:
            publisher.join(60)
        assert [publisher.exitcode for publisher in publishers] == [0, 0, 0, 0]
        assert stored(broker) == 4


def test_an_empty_poll_does_not_wait_for_the_write_lock(tmp_path: Path):
    """Every worker polls each of its queues every BROKER_POLL_INTERVAL, and most polls find
    nothing; each took SQLite's write lock (BEGIN IMMEDIATE), so publishers and the urgent
    worker's takes queued behind empty polls (and behind a niced worker descheduled while
    holding it). An empty queue is now seen with a read."""
    import sqlite3
    import threading
    from queue import Empty

    sqlite_broker.register()
    broker = tmp_path / "broker.sqlite3"
    with Connection(f"sqla+sqlite:///{broker}") as kombu:
        queue = kombu.SimpleQueue("q")
        queue.put({"n": 1})
        queue.get(timeout=5).ack()  # the tables and the queue exist; the queue is empty
        holder = sqlite3.connect(broker, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process writing (a publish, a take)
        polled: list[str] = []

        def poll() -> None:
            try:
                queue.get(block=False)
            except Empty:
                polled.append("empty")

        try:
            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            poller.join(timeout=3)
            assert polled == ["empty"]
        finally:
            holder.rollback()
            holder.close()
        queue.close()
