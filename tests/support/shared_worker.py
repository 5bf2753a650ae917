"""One Celery worker process for every test file of a pytest process that needs one.

Starting a worker costs seconds (imports, then "ready."), and a warm shutdown two more; most
test files that use one run for less. So the worker starts once, with the first file that
needs it, and between files it consumes nothing: at a file's end it cancels its consumers
(Celery remote control), lets what it holds finish and the queues are emptied; the next file
that needs it finds empty queues and makes it consume again. A file that stopped or killed it
gets a fresh one next time, and so does one whose tasks would not finish in time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from celery import Celery

from models.settings import Settings
from tests.support.worker import WorkerProcess, start_worker
from worker.celery_app import worker_queues

REPLY_TIMEOUT = 5.0  # seconds for the worker to answer one remote-control request
# For the tasks it holds at a file's end (a retry due later among them); then it is stopped
# instead, as a warm shutdown would leave them in the queue, and the next file starts another.
SETTLE_TIMEOUT = 3.0


class WorkerNotAnswering(Exception):
    pass


class SharedWorker:
    def __init__(self, settings: Settings, *, log_dir: Path, extra_env: dict[str, str]) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.extra_env = extra_env
        self.queues = worker_queues(settings.celery_queue)
        # The remote control's own app: a test may leave the suite's configured for another broker.
        self.control = Celery("odock-sync-test-control", set_as_current=False)
        self.control.conf.update(
            # Not broker_url alone: a CELERY_BROKER_URL in the environment would win over it.
            broker_read_url=settings.celery_broker_url,
            broker_write_url=settings.celery_broker_url,
            broker_transport_options={"polling_interval": settings.broker_poll_interval},
        )
        # Remote control needs a broker that carries broadcasts between processes (Redis);
        # on the embedded one each file gets a worker of its own, stopped with it.
        self.shared = settings.celery_broker_url.startswith(("redis://", "rediss://"))
        self.current: WorkerProcess | None = None
        self.connections_gone = False

    def start_file(self) -> WorkerProcess:
        """The worker, consuming from empty queues until `end_file`. It shows the file only its
        start-up lines and what it logs from now on."""
        if self.connections_gone:
            self.stop()
        self.purge()
        if not (self._running() and self._consume()):
            self.stop()  # a warm shutdown puts back what it held: purged again below
            self.purge()
            self.current = start_worker(
                self.settings, log_dir=self.log_dir, extra_env=self.extra_env
            )
        assert self.current is not None
        return replace(self.current, log_from=self.current.log_path.stat().st_size)

    def end_file(self) -> None:
        """Leave the worker idle, or stopped if it would not settle, and the queues empty."""
        if not (self.shared and self._running() and self.pause()):
            self.stop()
        self.purge()

    def drop_connections(self) -> None:
        """A test terminated the database's backends, the idle worker's among them: the next
        file gets a fresh worker (one connection pooled in each of its processes would fail
        the first task that takes it)."""
        self.connections_gone = self._running()

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
        self.current = None
        self.connections_gone = False

    def pause(self) -> bool:
        """Consume no more and finish what it holds: False when it does not, in time."""
        try:
            for queue in self.queues:
                self._command("cancel_consumer", queue)
            self._wait_for(lambda: not self._consumed_queues())
            self._wait_for(lambda: not self._held_tasks(), timeout=SETTLE_TIMEOUT)
        except WorkerNotAnswering:
            return False
        return True

    def purge(self) -> None:
        """Drop the messages waiting in the run's queues (tasks earlier tests published)."""
        with self.control.connection_for_write() as connection:
            for queue in self.queues:
                connection.default_channel.queue_purge(queue)

    def _running(self) -> bool:
        return self.current is not None and self.current.process.poll() is None

    def _consume(self) -> bool:
        try:
            for queue in self.queues:
                self._command("add_consumer", queue)
            self._wait_for(lambda: set(self._consumed_queues()) == set(self.queues))
        except WorkerNotAnswering:
            return False
        return True

    def _command(self, command: str, queue: str) -> None:
        """Celery applies a consumer change after it has answered: `_consumed_queues` tells."""
        send = getattr(self.control.control, command)
        replies = send(queue, destination=[self._node()], reply=True, timeout=REPLY_TIMEOUT)
        if not any("ok" in reply.get(self._node(), {}) for reply in replies or []):
            raise WorkerNotAnswering(f"{self._node()} to {command} {queue}: {replies}")

    def _consumed_queues(self) -> list[str]:
        return [queue["name"] for queue in self._ask("active_queues")]

    def _held_tasks(self) -> int:
        """The tasks it runs, has taken, or keeps for later (a countdown, a retry's ETA)."""
        return sum(len(self._ask(what)) for what in ("active", "reserved", "scheduled"))

    def _ask(self, what: str) -> list[Any]:
        inspect = self.control.control.inspect(destination=[self._node()], timeout=REPLY_TIMEOUT)
        answer = getattr(inspect, what)() or {}
        if self._node() not in answer:
            raise WorkerNotAnswering(f"{self._node()} to {what}")
        return list(answer[self._node()])

    def _wait_for(self, check: Callable[[], object], timeout: float = REPLY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise WorkerNotAnswering(f"{self._node()}: {check} after {timeout} s")
            time.sleep(0.05)

    def _node(self) -> str:
        assert self.current is not None
        return self.current.node_name
