"""`odock-sync serve` stopped by SIGINT and SIGKILL leaves no child behind (SIGTERM, with the
README walk-through, is in tests/cli/test_serve.py; apart, the two files run side by side)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.cli.test_serve import serve_ready_then_stopped


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_serve_is_ready_and_leaves_no_child_behind(
    tmp_path: Path, stop: signal.Signals, request: pytest.FixtureRequest
) -> None:
    serve_ready_then_stopped(tmp_path, stop, request)
