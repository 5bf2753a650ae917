"""The Procfile's processes started with a bad setting: one line naming it, exit 1, no
traceback, and the web never listening."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.settings import (
    EMBEDDED_SECRET_FILE,
    SECRET_KEY_MIN_BYTES,
    SettingsError,
    load_settings,
)
from tests.support.keys import TEST_SECRET_KEY
from tests.support.net import ADDRESS_IN_USE, PortTaken, start_on_a_free_port

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
COMMANDS = {
    "web": [
        PYTHON,
        "-m",
        "gunicorn",
        "--workers",
        "1",
        "--bind",
        "127.0.0.1:{port}",
        "--config",
        "python:webhooks.gunicorn_conf",
        "webhooks.app:create_app()",
    ],
    "worker": [PYTHON, "-m", "celery", "-A", "worker.entry", "worker", "--pool", "solo"],
    "beat": [PYTHON, "-m", "celery", "-A", "worker.entry", "beat"],
}
# A server database nobody listens on: the key is refused before anything connects.
SERVER_DATABASE_URL = "postgresql://odock@127.0.0.1:1/odock"


def start(
    command: list[str], tmp_path: Path, **bad: str | None
) -> subprocess.CompletedProcess[str]:
    """`command` in an empty directory; SECRET_KEY is the tests' unless `bad` names it (a
    server DATABASE_URL in the suite's environment needs one)."""
    given = {**os.environ, "PYTHONPATH": str(ROOT), "SECRET_KEY": TEST_SECRET_KEY, **bad}
    env = {name: value for name, value in given.items() if value is not None}

    def run_on(port: int) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [part.replace("{port}", str(port)) for part in command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if any(marker in done.stderr for marker in ADDRESS_IN_USE):
            raise PortTaken(done.stderr)
        return done

    return start_on_a_free_port(run_on)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("BROKER_POLL_INTERVAL", "abc", "BROKER_POLL_INTERVAL"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "OTEL_TRACES_EXPORTER"),
        ("SECRET_KEY", "changeme", "SECRET_KEY"),
    ],
)
@pytest.mark.parametrize("process", ["web", "worker", "beat"])
def test_a_process_started_with_a_bad_setting_says_which_in_one_line(
    tmp_path, process, variable, value, named
):
    done = start(COMMANDS[process], tmp_path, **{variable: value})

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    complaint = [line for line in done.stderr.splitlines() if line.startswith("odock-sync: ")]
    assert len(complaint) == 1 and named in complaint[0], done.stderr
    assert "Booting worker" not in done.stderr and "Listening at" not in done.stderr


@pytest.mark.parametrize("key", [None, ""], ids=["unset", "empty"])
@pytest.mark.parametrize("process", ["web", "worker", "beat", "command"])
def test_a_server_database_without_a_secret_key_is_refused_in_one_line(tmp_path, process, key):
    """Processes on many hosts share a PostgreSQL database: a key generated into each one's
    directory would leave each unable to read what another encrypted or signed."""
    cli = [PYTHON, "-c", "from cli.main import main; main()", "users", "list", "--org", "x"]
    command = COMMANDS.get(process, cli)

    done = start(command, tmp_path, DATABASE_URL=SERVER_DATABASE_URL, SECRET_KEY=key)

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    prefix = "Error: " if process == "command" else "odock-sync: "
    complaint = [line for line in done.stderr.splitlines() if line.startswith(prefix)]
    assert len(complaint) == 1, done.stderr
    assert "invalid settings: SECRET_KEY: must be set" in complaint[0]
    assert "same key on every host" in complaint[0] and "token_urlsafe" in complaint[0]
    assert "Booting worker" not in done.stderr and "Listening at" not in done.stderr
    assert not (tmp_path / EMBEDDED_SECRET_FILE).exists()


@pytest.mark.parametrize("embedded_url", [None, "sqlite:///odock-sync.sqlite3"])
def test_the_embedded_default_generates_its_key_and_refuses_a_short_key_file(
    tmp_path, monkeypatch, embedded_url
):
    """No configuration (or a SQLite file) still starts (README's first run); a key file cut
    short does not."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    if embedded_url:
        monkeypatch.setenv("DATABASE_URL", embedded_url)

    generated = load_settings().secret_key

    assert len(generated.encode()) >= SECRET_KEY_MIN_BYTES
    assert (tmp_path / EMBEDDED_SECRET_FILE).read_text() == generated
    assert load_settings().secret_key == generated  # the same key on the next start
    (tmp_path / EMBEDDED_SECRET_FILE).write_text("dev\n")
    with pytest.raises(SettingsError, match=f"SECRET_KEY: {EMBEDDED_SECRET_FILE}: must be"):
        load_settings()
