"""`odock-sync serve` on the embedded default: ready, and stops without leaving a child."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import requests

from cli.serve import URGENT_NICENESS, WORKER_NICENESS
from tests.support.net import bound_listener, start_on_a_free_port, wait_listening
from tests.support.oidc import sign_in_through_the_invitation, start_provider
from tests.support.processes import alive, descendants
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED_ONLY = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "SECRET_KEY",
    "SMTP_HOST",
    "GATEWAY_URL",
    "PUBLIC_BASE_URL",
)


def embedded_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in EMBEDDED_ONLY}
    env["PYTHONPATH"] = str(ROOT)
    env["BROKER_POLL_INTERVAL"] = "0.1"
    env["OUTBOUND_ALLOW_LOOPBACK"] = "true"  # the walk-through's provider is on loopback
    return env


CLI = [sys.executable, "-c", "from cli.main import main; main()"]
# A bound on each CLI run against a hang, not a speed check: this file starts first in the
# run, beside the other workers' start-up, and `demo` once took over 60 s at load 23.
CLI_HANG_GUARD = 180


def start_serve(workdir: Path, port: int) -> tuple[subprocess.Popen[bytes], int]:
    """serve on `port`, once its web process listens there (PortTaken if it was taken)."""
    serve = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        cwd=workdir,
        env=embedded_env(),
        stdout=(workdir / "serve.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_listening(serve, [port], workdir / "serve.log", timeout=90)
    return serve, port


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
            "process:drain-worker": "ok",
            "process:beat": "ok",
        }
    )


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM], ids=lambda s: s.name)
def test_serve_is_ready_and_leaves_no_child_behind(
    tmp_path: Path, stop: signal.Signals, request: pytest.FixtureRequest
) -> None:
    """The README's walk-through, then SIGTERM. SIGINT and SIGKILL are in
    tests/cli/test_serve_stops.py: a file of its own runs on another pytest-xdist worker
    beside this one (each case starts a whole serve)."""
    serve_ready_then_stopped(tmp_path, stop, request)


def serve_ready_then_stopped(
    tmp_path: Path, stop: signal.Signals, request: pytest.FixtureRequest
) -> None:
    """serve on a free port is ready with every process; after `stop` no child is left (on
    SIGTERM, the README walk-through first)."""
    serve, port = start_on_a_free_port(lambda port: start_serve(tmp_path, port))
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
            chromium = request.getfixturevalue("chromium")  # only this case drives a browser
            demo_then_the_printed_curl(tmp_path, port)
            invitation_accepted_through_the_local_outbox_link(tmp_path, port, chromium)
            assert_the_worker_yields_the_cpu_to_the_web(family)
            assert_one_control_socket_per_instance(family)
        serve.send_signal(stop)
        wait_until(lambda: not alive(family), timeout=60, what="every child to exit")
        serve.wait(timeout=30)
        if stop is not signal.SIGKILL:
            assert serve.returncode == 0, (tmp_path / "serve.log").read_text()
        assert not ready(port)
        if stop is not signal.SIGKILL:
            assert not (tmp_path / "odock-sync-serve.url").exists()
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
    # the bulk worker and, a little less nice, the one for urgent tasks; relative to the
    # niceness the tests themselves run at (`nice make test`), which serve's children inherit
    base = os.nice(0)
    workers = {min(base + WORKER_NICENESS, 19), min(base + URGENT_NICENESS, 19)}
    assert by_role == {"celery worker": workers, "gunicorn": {base}}


def niceness(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def cli(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=workdir,
        env={**embedded_env(), **(env or {})},
        capture_output=True,
        text=True,
        check=True,
        timeout=CLI_HANG_GUARD,
    )


def invitation_accepted_through_the_local_outbox_link(
    workdir: Path, port: int, chromium: Any
) -> None:
    """The README's walk-through: an OpenID Connect provider for the demo organisation (a
    real one on loopback), an invitation whose link is read from the local outbox (no SMTP
    server), opened in Chromium, signed in at the provider as the invitee, a name: ACTIVE."""
    listener, secret = bound_listener(), secrets.token_urlsafe(24)
    provider_port = listener.getsockname()[1]  # held until the provider listens there
    configured = cli(
        workdir, "sign-in", "oidc-set", "--org", "demo",
        "--issuer", f"http://127.0.0.1:{provider_port}", "--client-id", "odock-sync-test",
        "--name", "Demo IdP", env={"ODOCK_OIDC_CLIENT_SECRET": secret},
    )  # fmt: skip
    shown = json.loads(cli(workdir, "sign-in", "show", "--org", "demo", "--json").stdout)
    redirect_uri = shown["redirect_uri"]
    assert redirect_uri.startswith(f"http://127.0.0.1:{port}/enroll/oidc/callback/")
    assert f"register {redirect_uri} and " in configured.stdout
    provider = start_provider(
        redirect_uris=[redirect_uri],
        log_path=workdir / "provider.log",
        listener=listener,
        client_secret=secret,
    )
    try:
        link = invitation_link_from_the_local_outbox(workdir, port)
        context = chromium.new_context()
        page = context.new_page()
        sign_in_through_the_invitation(page, link, "pat@demo.example", name="Pat Example")
        assert page.locator("#user-status").inner_text() == "ACTIVE"
        context.close()
    finally:
        provider.stop()
    shown = json.loads(
        cli(workdir, "users", "show", "--org", "demo", "pat@demo.example", "--json").stdout
    )
    assert (shown["name"], shown["status"]) == ("Pat Example", "ACTIVE")


def invitation_link_from_the_local_outbox(workdir: Path, port: int) -> str:
    created = cli(workdir, "invitations", "create", "--org", "demo", "--email", "pat@demo.example")
    assert "local outbox" in created.stderr and "odock-sync mail show" in created.stderr

    def kept_link() -> str | None:
        kept = json.loads(cli(workdir, "mail", "list", "--to", "pat@", "--json").stdout)
        if not kept:
            return None
        shown = json.loads(cli(workdir, "mail", "show", kept[0]["id"], "--json").stdout)
        return next(link for link in shown["links"] if "/enroll/" in link)

    link = wait_until(kept_link, timeout=60, what="the invitation in the local outbox")
    assert link.startswith(f"http://127.0.0.1:{port}/enroll/inv_")  # serve's own port
    return str(link)


def assert_one_control_socket_per_instance(family: set[int]) -> None:
    """Gunicorn's control socket is named by its master, not one path shared by all."""
    web = {pid for pid in alive(family) if "gunicorn" in command_line(pid)}
    [master] = [pid for pid in web if parent(pid) not in web]
    directory = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    assert Path(directory, f"odock-sync-gunicorn-{master}.ctl").is_socket()


def command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def demo_then_the_printed_curl(workdir: Path, port: int) -> None:
    """The README's promise: `odock-sync demo` (which follows the port of the running serve),
    then run the command it prints."""
    demo = subprocess.run(
        [*CLI, "demo", "--json"],
        cwd=workdir,
        env=embedded_env(),
        capture_output=True,
        check=True,
        timeout=CLI_HANG_GUARD,
    )
    command = json.loads(demo.stdout)["curl"]
    assert f"http://127.0.0.1:{port}/api/v1/users/" in command
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


def test_serve_names_the_port_when_it_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*CLI, "serve", "--port", str(port)],
            cwd=tmp_path,
            env=embedded_env(),
            capture_output=True,
            text=True,
            timeout=CLI_HANG_GUARD,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert f"make serve PORT={port + 1}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "odock-sync.sqlite3").exists()  # it stopped before doing anything


def test_commands_follow_the_url_of_the_serve_running_here(tmp_path, monkeypatch) -> None:
    from cli.context import SERVE_URL_FILE, cli_settings, running_serve_url

    monkeypatch.chdir(tmp_path)
    for name in EMBEDDED_ONLY:  # serve's embedded default (PostgreSQL would need SECRET_KEY)
        monkeypatch.delenv(name, raising=False)
    assert running_serve_url() is None
    (tmp_path / SERVE_URL_FILE).write_text(f"{os.getpid()} http://127.0.0.1:8123\n")
    assert cli_settings().public_base_url == "http://127.0.0.1:8123"
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://sync.example.com")  # named: it wins
    assert cli_settings().public_base_url == "https://sync.example.com"
    monkeypatch.delenv("PUBLIC_BASE_URL")
    (tmp_path / SERVE_URL_FILE).write_text("999999999 http://127.0.0.1:8123\n")  # not running
    assert running_serve_url() is None
