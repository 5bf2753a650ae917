"""`odock-sync serve` on the embedded default: ready, and stops without leaving a child."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from cli.serve import URGENT_NICENESS, WORKER_NICENESS
from tests.support.net import free_port
from tests.support.processes import alive, descendants
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED_ONLY = ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "SMTP_HOST", "GATEWAY_URL")


def embedded_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in EMBEDDED_ONLY}
    env["PYTHONPATH"] = str(ROOT)
    env["BROKER_POLL_INTERVAL"] = "0.1"
    return env


CLI = [sys.executable, "-c", "from cli.main import main; main()"]


def start_serve(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        cwd=workdir,
        env=embedded_env(),
        stdout=(workdir / "serve.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def ready(port: int) -> bool:
    try:
        response = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    except requests.RequestException:
        return False
    body = response.json()
    return (
        response.status_code == 200
        and body["status"] == "ready"
        and body["checks"]
        == {
            "database": "ok",
            "broker": "ok",
            "process:web": "ok",
            "process:worker": "ok",
            "process:urgent-worker": "ok",
            "process:beat": "ok",
        }
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name
)
def test_serve_is_ready_and_leaves_no_child_behind(tmp_path: Path, stop: signal.Signals) -> None:
    port = free_port()
    serve = start_serve(tmp_path, port)
    family: set[int] = set()
    try:
        wait_until(lambda: ready(port), timeout=90, what=f"/readyz on {port}")
        # web master and its workers, the Celery worker and its pool, beat
        family = wait_until(
            lambda: found if len(found := descendants(serve.pid)) >= 5 else None,
            timeout=30,
            what="all children",
        )
        assert (tmp_path / "odock-sync.sqlite3").exists()
        if stop is signal.SIGTERM:
            demo_then_the_printed_curl(tmp_path, port)
            assert_the_worker_yields_the_cpu_to_the_web(family)
        serve.send_signal(stop)
        wait_until(lambda: not alive(family), timeout=60, what="every child to exit")
        serve.wait(timeout=30)
        if stop is not signal.SIGKILL:
            assert serve.returncode == 0, (tmp_path / "serve.log").read_text()
        assert not ready(port)
    finally:
        for pid in alive(family | {serve.pid}):
            os.kill(pid, signal.SIGKILL)


def assert_the_worker_yields_the_cpu_to_the_web(family: set[int]) -> None:
    by_role: dict[str, set[int]] = {"celery worker": set(), "gunicorn": set()}
    for pid in alive(family):
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        for role, nice_values in by_role.items():
            if all(word in args for word in role.split()):
                nice_values.add(niceness(pid))
    # the bulk worker and, a little less nice, the one for urgent tasks
    assert by_role == {"celery worker": {WORKER_NICENESS, URGENT_NICENESS}, "gunicorn": {0}}


def niceness(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def demo_then_the_printed_curl(workdir: Path, port: int) -> None:
    """The README's promise: `odock-sync demo`, then run the command it prints."""
    demo = subprocess.run(
        [*CLI, "demo", "--url", f"http://127.0.0.1:{port}", "--json"],
        cwd=workdir,
        env=embedded_env(),
        capture_output=True,
        check=True,
        timeout=60,
    )
    command = json.loads(demo.stdout)["curl"]
    answer = subprocess.run(shlex.split(command), capture_output=True, check=True, timeout=30)
    detail = json.loads(answer.stdout)
    assert detail["email"] == "uma@demo.example"
    for part in ("teams", "api_keys", "budgets", "quotas"):
        assert detail[part], part
    assert detail["usage"]["recent"]


def test_a_web_worker_keeps_what_the_app_loaded_out_of_the_garbage_collector() -> None:
    import gc

    from cli.serve import GUNICORN_CONFIG
    from webhooks import gunicorn_conf

    assert f"python:{gunicorn_conf.__name__}" == GUNICORN_CONFIG
    assert gc.get_freeze_count() == 0
    try:
        gunicorn_conf.post_worker_init(None)  # as gunicorn calls it once the app is loaded
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
