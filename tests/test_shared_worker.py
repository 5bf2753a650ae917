"""The worker shared by test files (tests/support/shared_worker.py) takes nothing between
files: a task published then stays queued, and the next file starts on empty queues."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support.shared_worker import SharedWorker
from tests.support.wait import wait_until
from worker.celery_app import celery_app

# Long enough for several of the worker's broker polls (0.05 s in the tests).
QUIET_SECONDS = 1.0


def publish() -> str:
    """A task no worker knows: the worker that takes it logs its id and drops it."""
    task_id = f"shared-worker-probe-{uuid.uuid4()}"
    celery_app.send_task("tests.not_a_task", task_id=task_id)
    return task_id


def queued(shared: SharedWorker) -> int:
    with shared.control.connection_for_write() as connection:
        client = connection.default_channel.client
        return sum(client.llen(queue) for queue in shared.queues)


@pytest.fixture
def shared(shared_worker: SharedWorker) -> SharedWorker:
    if not shared_worker.shared:
        pytest.skip("remote control needs the Redis broker")
    return shared_worker


def test_between_files_the_worker_takes_nothing_and_the_next_file_starts_afresh(shared):
    first = shared.start_file()
    taken = publish()
    wait_until(lambda: taken in first.log(), what="the first file's task taken")
    shared.end_file()

    waiting = publish()
    time.sleep(QUIET_SECONDS)
    assert queued(shared) == 1
    assert waiting not in first.log()

    second = shared.start_file()
    assert second.process.pid == first.process.pid
    assert queued(shared) == 0  # purged: the next file's worker never sees it
    assert taken not in second.log() and "ready." in second.log()  # its own part of the log
    wait_until(lambda: publish() in second.log(), what="the second file's task taken")
    assert waiting not in first.log()
    shared.end_file()


def test_a_file_that_killed_the_worker_leaves_the_next_a_fresh_one(shared):
    killed = shared.start_file()
    killed.kill()
    shared.end_file()

    fresh = shared.start_file()
    assert fresh.process.pid != killed.process.pid and fresh.process.poll() is None
    wait_until(lambda: publish() in fresh.log(), what="the fresh worker's task taken")
    shared.end_file()


def test_after_the_database_dropped_its_connections_the_next_file_gets_a_fresh_worker(shared):
    idle = shared.start_file()
    shared.end_file()
    shared.drop_connections()

    fresh = shared.start_file()
    assert fresh.process.pid != idle.process.pid and idle.process.poll() is not None
    shared.end_file()
