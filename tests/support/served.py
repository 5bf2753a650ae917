"""`odock-sync serve` in a subprocess on a database and a redis-server given by the caller, with
the knobs the fault tests and benchmarks turn (short deadlines, fast reaper)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from models.settings import Settings
from tests.support.net import bound_listener, start_on_a_free_port, wait_listening
from tests.support.processes import alive, descendants
from tests.support.wait import wait_until
from tests.support.worker import settings_env

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from cli.main import main; main()"]


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, **kwargs: object) -> requests.Response:
        return requests.post(self.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]

    def ready(self) -> bool:
        try:
            return self.get("/readyz").json().get("status") == "ready"
        except (requests.RequestException, ValueError):
            return False

    def child_pid(self, marker: str) -> int:
        """The pid of the direct child whose command line holds `marker` (e.g. "urgent@")."""
        for pid in descendants(self.process.pid):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                args = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            if parent == self.process.pid and marker in args:
                return pid
        raise LookupError(marker)

    def stop(self) -> None:
        family = descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in alive(family):
            os.kill(pid, signal.SIGKILL)


def start_served(
    *, workdir: Path, database_url: str, broker_url: str, env: dict[str, str]
) -> Served:
    """Serve with one web worker and one slot per worker (the machine is shared)."""
    return start_on_a_free_port(
        lambda port: _served_on(
            port, workdir=workdir, database_url=database_url, broker_url=broker_url, env=env
        )
    )


def _served_on(
    port: int, *, workdir: Path, database_url: str, broker_url: str, env: dict[str, str]
) -> Served:
    log_path = workdir / f"serve-{time.monotonic_ns()}.log"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_"))},
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"metrics-{port}"),
        "LOG_LEVEL": "INFO",
        **env,
    }
    command = [*CLI, "serve", "--port", str(port), "--web-workers", "1", "--concurrency", "1"]
    command += ["--beat-schedule", str(workdir / f"beat-{port}")]
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env=full_env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    served = Served(process, f"http://127.0.0.1:{port}", log_path)
    wait_listening(process, [port], log_path, timeout=120)
    try:
        wait_until(served.ready, timeout=120, interval=0.3, what="serve to be ready")
    except AssertionError:
        served.stop()
        raise AssertionError(f"serve not ready:\n{served.log()[-5000:]}") from None
    return served


WEB_ALONE = """
import sys
from werkzeug.serving import make_server
from webhooks.app import create_app
{setup}
make_server("127.0.0.1", 0, create_app(), threaded=True, fd=int(sys.argv[1])).serve_forever()
"""


@contextmanager
def web_alone(env: dict[str, str], log_dir: Path, *, setup: str = "") -> Iterator[str]:
    """The web app alone (no worker, no beat) in a process of its own with this environment
    (and `setup`, Python run before the app is made), on a loopback socket bound here and
    handed over; yields its URL once /healthz answers, kills it after."""
    with bound_listener() as listener:
        port = listener.getsockname()[1]
        log = (log_dir / f"web-{port}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-c", WEB_ALONE.format(setup=setup), str(listener.fileno())],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=[listener.fileno()],
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(up, timeout=60, interval=0.2, what="the web")
        yield url
    finally:
        process.kill()
        process.wait()


@dataclass
class WebProcess:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def web_as_served(
    settings: Settings, workdir: Path, *, workers: int, threads: int, env: dict[str, str]
) -> Iterator[WebProcess]:
    """The web process exactly as `odock-sync serve` starts it (gunicorn, `workers` x
    `threads`), on these settings and `env` over them; yields once /healthz answers, stops it
    (SIGTERM, then SIGKILL) after."""
    port, process, log = start_on_a_free_port(
        lambda port: _web_as_served_on(port, settings, workdir, workers, threads, env)
    )
    served = WebProcess(port, process, log)
    try:
        wait_until(lambda: _healthy(served.url), timeout=60, what=f"/healthz on {port}")
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _web_as_served_on(
    port: int, settings: Settings, workdir: Path, workers: int, threads: int, env: dict[str, str]
) -> tuple[int, subprocess.Popen[bytes], Path]:
    from cli.serve import commands

    web = next(
        child
        for child in commands(
            settings,
            host="127.0.0.1",
            port=port,
            web_workers=workers,
            web_threads=threads,
            concurrency=1,
            beat_schedule=str(workdir / "beat"),
        )
        if child.name == "web"
    )
    log = workdir / "web.log"
    process = subprocess.Popen(
        web.command,
        env=settings_env(settings, PROMETHEUS_MULTIPROC_DIR=str(workdir), **env),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_listening(process, [port], log)
    return port, process, log


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False
