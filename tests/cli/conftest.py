"""Running the `odock-sync` command line in-process (click's CliRunner) on the test database."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from models.settings import Settings


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, clean_db: None) -> None:
    """The environment a CLI command reads: exactly the test settings."""
    for name, value in settings.model_dump().items():
        monkeypatch.setenv(name.upper(), str(value))


@pytest.fixture
def run(cli_env: None) -> Callable[..., Result]:
    def invoke(*args: str, ok: bool = True) -> Result:
        result = CliRunner().invoke(main, list(args))
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code != 0, result.output
            assert "Traceback" not in result.output
            assert not isinstance(result.exception, Exception) or isinstance(
                result.exception, SystemExit
            ), result.exception
        return result

    return invoke


@pytest.fixture
def run_json(run: Callable[..., Result]) -> Callable[..., Any]:
    def invoke(*args: str) -> Any:
        return json.loads(run(*args, "--json").stdout)  # notes go to stderr

    return invoke
