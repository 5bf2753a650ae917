"""`odock-sync serve`: the embedded all-in-one (web, Celery workers, Celery beat) in one command.

The Procfile processes run as children of this one. A child that exits (a worker crashed by
its broker, beat, even the web) is restarted with backoff while the others go on, and its
state is written where /readyz reads it. A clean stop (Ctrl-C, SIGTERM) stops them all; and
on Linux each child asks the kernel to send it SIGTERM should this parent die without a
chance to clean up (SIGKILL, OOM), so no child is ever left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click
import requests

from cli.context import SERVE_URL_FILE, cli_settings, named_in_environment, upgrade_database
from models.settings import Settings
from webhooks.health import SUPERVISOR_STATE_VARIABLE
from worker.celery_app import drain_queue, urgent_queue

PR_SET_PDEATHSIG = 1
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT = 20.0
STABLE_AFTER = 30.0  # a child that ran this long before exiting is restarted after 1 s again
RESTART_DELAY_MAX = 30.0
READY_TIMEOUT = 60.0
WORKER_NICENESS = 10
URGENT_NICENESS = 5
URGENT_CONCURRENCY = 2
URGENT_PREFETCH = 8
# One drain per organisation runs at a time (worker.turns); two slots let a second
# organisation's stream apply beside a first one's.
DRAIN_CONCURRENCY = 2
GUNICORN_CONFIG = "python:webhooks.gunicorn_conf"
CELERY_APP = "worker.entry"
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name
EMBEDDED_METRICS_DIR = "odock-sync-metrics"


@dataclass
class Child:
    name: str
    command: list[str]
    niceness: int = 0
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    failures_in_a_row: int = 0
    started_at: float = 0.0
    restart_at: float | None = None
    last_exit: int | None = None


@dataclass
class Supervisor:
    """Starts children, restarts any that exits (with backoff), and stops them all together.

    The web keeps answering while a worker or beat is down and being restarted; the state of
    every child is written to `state_path` (JSON), which /readyz reports.
    """

    children: list[Child]
    env: dict[str, str]
    state_path: Path | None = None
    stopping: bool = False
    exit_code: int = 0

    def run(self, on_started: Callable[[], None] | None = None) -> int:
        self._trap_signals()
        try:
            for child in self.children:
                self._start(child)
            self.write_state()
            if on_started is not None:
                on_started()
            while not self.stopping:
                self.check_children()
                time.sleep(0.2)
        finally:
            self.stop_all()
        return self.exit_code

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(  # noqa: S603 (our own fixed commands)
            child.command,
            env=self.env,
            process_group=0,  # Ctrl-C reaches only us; we stop children in order
            preexec_fn=_prepare_child(os.getpid(), child.niceness),
        )
        child.started_at, child.restart_at = time.monotonic(), None

    def check_children(self) -> None:
        """Restart the children due for it; schedule a restart for those that exited."""
        changed = False
        now = time.monotonic()
        for child in self.children:
            if self.stopping:
                return
            if child.process is None:
                if child.restart_at is not None and now >= child.restart_at:
                    click.echo(f"odock-sync: restarting {child.name}", err=True)
                    self._start(child)
                    changed = True
                continue
            code = child.process.poll()
            if code is None:
                continue
            # Grandchildren (Celery pool processes, gunicorn workers) of a child that died.
            _signal_group(child.process, signal.SIGKILL)
            stable = now - child.started_at >= STABLE_AFTER
            child.failures_in_a_row = 1 if stable else child.failures_in_a_row + 1
            delay = restart_delay(child.failures_in_a_row)
            click.echo(
                f"odock-sync: {child.name} exited with {code}; restarting in {delay:g}s", err=True
            )
            child.process, child.last_exit = None, code
            child.restarts += 1
            child.restart_at = now + delay
            changed = True
        if changed:
            self.write_state()

    def write_state(self) -> None:
        """Each child's state for /readyz: running, or restarting (with its restarts so far)."""
        if self.state_path is None:
            return
        state = {
            "pid": os.getpid(),
            "children": {
                child.name: {
                    "state": "running" if child.process is not None else "restarting",
                    "restarts": child.restarts,
                    "last_exit": child.last_exit,
                }
                for child in self.children
            },
        }
        partial = self.state_path.with_suffix(".tmp")
        partial.write_text(json.dumps(state))
        partial.replace(self.state_path)  # readers never see half a file

    def _trap_signals(self) -> None:
        def request_stop(signum: int, _frame: FrameType | None) -> None:
            self.stopping = True

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, request_stop)

    def stop_all(self) -> None:
        """SIGTERM every child, wait for a graceful exit, then kill what is left."""
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for process in running:
            process.terminate()  # each child stops its own workers gracefully
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        for child in self.children:
            # Grandchildren (gunicorn workers, Celery pool processes) of a child that died
            # first are still in its process group.
            if child.process is not None:
                _signal_group(child.process, signal.SIGKILL)
        if self.state_path is not None:
            self.state_path.unlink(missing_ok=True)


def restart_delay(failures_in_a_row: int) -> float:
    """1 s after a child that had run a while exits, doubling while it keeps failing (to 30 s)."""
    return float(min(RESTART_DELAY_MAX, 2 ** max(0, failures_in_a_row - 1)))


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _prepare_child(parent_pid: int, niceness: int) -> Callable[[], None]:
    """In the child, before exec: lower its priority; SIGTERM it when the parent dies (Linux)."""

    def arrange() -> None:
        if niceness:
            os.nice(niceness)
        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of each child: ours, with the package importable and the same secret."""
    env = dict(os.environ)
    paths = [str(PACKAGE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["SECRET_KEY"] = settings.secret_key
    env["PUBLIC_BASE_URL"] = settings.public_base_url
    env.setdefault(METRICS_DIR_VARIABLE, str(Path(EMBEDDED_METRICS_DIR).resolve()))
    env[SUPERVISOR_STATE_VARIABLE] = str(Path(env[METRICS_DIR_VARIABLE]) / "supervisor.json")
    return env


def fresh_metrics_dir(env: dict[str, str]) -> None:
    """An empty directory where every child writes its Prometheus figures (multiprocess mode):
    the web serves them all, the time to kill access that the workers observe included."""
    directory = Path(env[METRICS_DIR_VARIABLE])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # a previous run's figures
        stale.unlink()


def commands(
    settings: Settings,
    *,
    host: str,
    port: int,
    web_workers: int,
    web_threads: int,
    concurrency: int,
    beat_schedule: str,
) -> list[Child]:
    python = sys.executable
    celery = [python, "-m", "celery", "-A", CELERY_APP]
    return [
        Child(
            "web",
            [
                python,
                "-m",
                "gunicorn",
                "--bind",
                f"{host}:{port}",
                "--workers",
                str(web_workers),
                "--threads",
                str(web_threads),
                "--graceful-timeout",
                "10",
                "--config",
                GUNICORN_CONFIG,
                "webhooks.app:create_app()",
            ],
        ),
        Child(
            "worker",
            [
                *celery_worker_command([settings.celery_queue], concurrency, loglevel="INFO"),
                "-n",
                "worker@%h",
            ],
            # Sharing one host, the web answers first (IdPs time out in seconds; Okta's event
            # hooks in 3) and the worker, whose work is already stored, catches up.
            niceness=WORKER_NICENESS,
        ),
        Child(
            "urgent-worker",
            [*urgent_worker_command(settings.celery_queue, loglevel="INFO"), "-n", "urgent@%h"],
            # Gateway invalidations, IdP event drains, incremental directory syncs: they never
            # wait behind bulk work.
            niceness=URGENT_NICENESS,
        ),
        Child(
            "drain-worker",
            [*drain_worker_command(settings.celery_queue, loglevel="INFO"), "-n", "drain@%h"],
            # IdP event drains: their revocations are cut-offs too, and a drain holding a slot
            # for a whole stream must not take one the gateway invalidations need.
            niceness=URGENT_NICENESS,
        ),
        Child("beat", [*celery, "beat", "--loglevel=INFO", "--schedule", beat_schedule]),
    ]


def wait_ready(url: str, supervisor: Supervisor) -> None:
    """Say so once /readyz answers 200 (or give up quietly after a while)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and not supervisor.stopping:
        supervisor.check_children()
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                click.echo(f"odock-sync is ready at {url} (Ctrl-C to stop)", err=True)
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on; PUBLIC_BASE_URL follows it unless set.",
)
@click.option("--web-workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--web-threads",
    default=8,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Threads per web worker: requests mostly wait on the database.",
)
@click.option(
    "--concurrency", default=2, show_default=True, type=click.IntRange(1, 64), help="Task slots."
)
@click.option("--beat-schedule", default="odock-sync-beat-schedule", show_default=True)
def serve(
    host: str, port: int, web_workers: int, web_threads: int, concurrency: int, beat_schedule: str
) -> None:
    """Run migrations, then the web app, a Celery worker and Celery beat, until stopped."""
    settings = cli_settings()  # a bad setting is named first, whatever holds the port
    require_free_port(host, port)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104
    if not named_in_environment("PUBLIC_BASE_URL"):  # links in emails follow --port
        settings = settings.model_copy(update={"public_base_url": url})
    upgrade_database(settings)
    children = commands(
        settings,
        host=host,
        port=port,
        web_workers=web_workers,
        web_threads=web_threads,
        concurrency=concurrency,
        beat_schedule=beat_schedule,
    )
    env = child_env(settings)
    fresh_metrics_dir(env)
    supervisor = Supervisor(children, env, state_path=Path(env[SUPERVISOR_STATE_VARIABLE]))
    click.echo(f"odock-sync: starting web on {host}:{port}, a worker and beat", err=True)
    url_file = Path(SERVE_URL_FILE)
    url_file.write_text(f"{os.getpid()} {settings.public_base_url}\n")
    try:
        code = supervisor.run(on_started=lambda: wait_ready(url, supervisor))
    finally:
        url_file.unlink(missing_ok=True)
    click.echo("odock-sync: stopped", err=True)
    sys.exit(code)


def require_free_port(host: str, port: int) -> None:
    """Stop with a message naming the port when something listens on it already."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}. Another odock-sync "
                f"serve or another program uses port {port}; stop it, or choose another port: "
                f"odock-sync serve --port {port + 1} (make serve PORT={port + 1})"
            ) from None


def urgent_worker_command(queue: str, *, loglevel: str) -> list[str]:
    """The worker of the urgent queue. It reserves tasks ahead: a polling broker (the embedded
    one) is otherwise not read again until a polling interval after both slots were busy."""
    command = celery_worker_command([urgent_queue(queue)], URGENT_CONCURRENCY, loglevel=loglevel)
    return [*command, f"--prefetch-multiplier={URGENT_PREFETCH}"]


def drain_worker_command(queue: str, *, loglevel: str) -> list[str]:
    """The worker of the IdP event drains. No tasks reserved ahead: a drain runs for a whole
    stream, and a wake-up reserved behind it would wait for it instead of going to the free
    slot."""
    return celery_worker_command([drain_queue(queue)], DRAIN_CONCURRENCY, loglevel=loglevel)


def celery_worker_command(queues: list[str], concurrency: int, *, loglevel: str) -> list[str]:
    """A Celery worker on `queues`, as `serve` runs it (the tests and benchmarks too)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        CELERY_APP,
        "worker",
        "-Q",
        ",".join(queues),
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        # Workers need no gossip, mingle or heartbeat events from one another.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
