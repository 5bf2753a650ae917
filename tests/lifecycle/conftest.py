"""The lifecycle tests run the command line in-process as tests/cli does."""

from tests.cli.conftest import cli_env, run  # noqa: F401
