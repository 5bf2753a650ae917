"""A real Celery worker in a subprocess, on the test database and broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery

from cli.serve import CELERY_APP, celery_worker_command
from models.settings import Settings
from worker.celery_app import worker_queues

ROOT = Path(__file__).resolve().parents[2]
# `python -m celery …` with `setup` run first (spawn_worker's `setup`).
WITH_SETUP = """\
import sys
{setup}
from celery.__main__ import main
sys.argv[0] = "celery"
main()
"""


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a child process load exactly these settings."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name, value in settings.model_dump().items():
        env[name.upper()] = str(value)
    env.update(extra)
    return env


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    node_name: str = ""  # what Celery's remote control addresses it by
    # A worker shared by test files shows each file its start-up lines (up to "ready.") and
    # then only what it logged from `log_from` on (tests/support/shared_worker.py).
    start_up_end: int = 0
    log_from: int = 0

    def log(self) -> str:
        logged = self.log_path.read_bytes()
        if self.log_from > self.start_up_end:
            logged = logged[: self.start_up_end] + logged[self.log_from :]
        return logged.decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.wait_stopped()

    def wait_stopped(self) -> None:
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def purge_queues(settings: Settings) -> None:
    """Drop the messages waiting in the run's queues (tasks earlier tests published)."""
    from worker.celery_app import celery_app

    with celery_app.connection_for_write() as connection:
        for queue in worker_queues(settings.celery_queue):
            connection.default_channel.queue_purge(queue)


def stop_all(processes: list[WorkerProcess]) -> None:
    """Stop them together: each waits for its running tasks, so one after another adds up."""
    for started in processes:
        if started.process.poll() is None:
            started.process.send_signal(signal.SIGTERM)
    for started in processes:
        started.wait_stopped()


def start_worker(settings: Settings, **options: Any) -> WorkerProcess:
    """A worker, ready (`spawn_worker`'s options: default queues the urgent and the default
    queue, as without -Q)."""
    worker = spawn_worker(settings, **options)
    wait_ready(worker)
    return worker


def spawn_worker(
    settings: Settings,
    *,
    log_dir: Path,
    concurrency: int = 2,
    extra_env: dict[str, str] | None = None,
    queues: list[str] | None = None,
    setup: str = "",
) -> WorkerProcess:
    """`start_worker` without waiting for it to be ready (`wait_ready`), so that other
    processes can start meanwhile. `setup`: Python the worker runs before Celery starts (its
    pool's processes, forked from it, inherit what it installs)."""
    log_path = log_dir / f"worker-{time.monotonic_ns()}.log"
    queues = queues or worker_queues(settings.celery_queue)
    node_name = f"test-{time.monotonic_ns()}@{socket.gethostname()}"  # as -n ...@%h names it
    command = [*celery_worker_command(queues, concurrency, loglevel="INFO"), "-n", node_name]
    if setup:
        command[1:3] = ["-c", WITH_SETUP.format(setup=setup)]
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=settings_env(settings, **(extra_env or {})),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return WorkerProcess(process, log_path, node_name)


def wait_ready(worker: WorkerProcess, timeout: float = 60, marker: str = "ready.") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logged = worker.log_path.read_bytes()
        if marker.encode() in logged:
            worker.start_up_end = _end_of_line(logged, logged.find(marker.encode()))
            return
        if worker.process.poll() is not None:
            raise RuntimeError(f"celery worker exited early:\n{worker.log()}")
        time.sleep(0.1)
    worker.kill()
    raise RuntimeError(f"celery worker not ready after {timeout}s:\n{worker.log()}")


def _end_of_line(text: bytes, position: int) -> int:
    newline = text.find(b"\n", position)
    return len(text) if newline < 0 else newline + 1


def start_shifted(
    settings: Settings,
    *,
    log_dir: Path,
    offset: float,
    roles: Sequence[str] = ("worker",),
    extra_env: dict[str, str] | None = None,
) -> list[WorkerProcess]:
    """Workers and beats (`roles`: "worker" or "beat" each) whose clocks run `offset` seconds
    from real time. They start together: each spends seconds importing before it is ready,
    and started one after another those seconds added up."""
    spawned = [_spawn_shifted(settings, log_dir, offset, role, extra_env) for role in roles]
    try:
        for started, ready in spawned:
            wait_ready(started, marker=ready)
    except BaseException:
        stop_all([started for started, _ in spawned])
        raise
    return [started for started, _ in spawned]


def _spawn_shifted(
    settings: Settings,
    log_dir: Path,
    offset: float,
    role: str,
    extra_env: dict[str, str] | None,
) -> tuple[WorkerProcess, str]:
    """The process of one role, and the line of its log that says it is ready."""
    log_path = log_dir / f"{role}-{time.monotonic_ns()}.log"
    if role == "beat":
        celery_args = ["-A", CELERY_APP, "beat", "--loglevel=INFO"]
        celery_args += ["--schedule", str(log_dir / f"beat-{time.monotonic_ns()}")]
        ready = "beat: Starting"
    else:
        command = celery_worker_command(worker_queues(settings.celery_queue), 2, loglevel="INFO")
        celery_args = [*command[command.index("celery") + 1 :], "-n", f"t{time.monotonic_ns()}@%h"]
        ready = "ready."
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.shifted_clock", str(offset), "celery", *celery_args],
        cwd=ROOT,
        env=settings_env(settings, **(extra_env or {})),
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return WorkerProcess(process, log_path), ready


def broker_client(settings: Settings) -> Celery:
    """A client of `settings`' broker (a test's own redis-server), as the outbox publishes."""
    app = Celery("test-client")
    # broker_url would lose to a CELERY_BROKER_URL in the environment (the suite's own broker)
    app.conf.broker_write_url = settings.celery_broker_url
    app.conf.broker_read_url = settings.celery_broker_url
    return app


def send_notification(settings: Settings, organisation_id: uuid.UUID, event: str) -> str:
    """Ask a worker for a notification as the outbox would: notifications.dispatch on
    `settings`' queue; its task id."""
    task_id = str(uuid.uuid4())
    app = broker_client(settings)
    app.send_task(
        "notifications.dispatch",
        kwargs={
            "event_id": str(uuid.uuid4()),
            "organisation_id": str(organisation_id),
            "event": event,
            "payload": {"note": event},
            "recipient_user_ids": [],
        },
        queue=settings.celery_queue,
        task_id=task_id,
    )
    app.close()
    return task_id
