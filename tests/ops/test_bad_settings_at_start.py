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
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]


def start(command: list[str], tmp_path: Path, **bad: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **bad}
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


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
    python = sys.executable
    command = {
        "web": [
            python,
            "-m",
            "gunicorn",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{free_port()}",
            "--config",
            "python:webhooks.gunicorn_conf",
            "webhooks.app:create_app()",
        ],
        "worker": [python, "-m", "celery", "-A", "worker.entry", "worker", "--pool", "solo"],
        "beat": [python, "-m", "celery", "-A", "worker.entry", "beat"],
    }[process]

    done = start(command, tmp_path, **{variable: value})

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    complaint = [line for line in done.stderr.splitlines() if line.startswith("odock-sync: ")]
    assert len(complaint) == 1 and named in complaint[0], done.stderr
    assert "Booting worker" not in done.stderr and "Listening at" not in done.stderr


def test_the_embedded_default_generates_its_key_and_refuses_a_short_key_file(tmp_path, monkeypatch):
    """No configuration still starts (README's first run); a key file cut short does not."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SECRET_KEY", raising=False)

    generated = load_settings().secret_key

    assert len(generated.encode()) >= SECRET_KEY_MIN_BYTES
    assert (tmp_path / EMBEDDED_SECRET_FILE).read_text() == generated
    assert load_settings().secret_key == generated  # the same key on the next start
    (tmp_path / EMBEDDED_SECRET_FILE).write_text("dev\n")
    with pytest.raises(SettingsError, match=f"SECRET_KEY: {EMBEDDED_SECRET_FILE}: must be"):
        load_settings()
