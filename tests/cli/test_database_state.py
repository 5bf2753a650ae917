"""The command line on a database it cannot use as it is: never migrated, or migrated by a
newer version. Each command ends with one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from cli.main import main
from tests.support.migration_db import own_database


@pytest.fixture
def empty_database_url(cli_env: None, tmp_path: Path) -> Iterator[str]:
    """A database of the same kind as the suite's, with nothing in it."""
    for engine in own_database(tmp_path):
        yield engine.url.render_as_string(hide_password=False)


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize(
    "command",
    [
        ["org", "create", "--name", "Acme"],
        ["users", "list", "--org", "acme"],
        ["invitations", "expire"],
        ["audit", "export", "--since", "2026-01-01"],
    ],
    ids=lambda c: "-".join(c[:2]),
)
def test_a_database_never_migrated_names_db_upgrade(empty_database_url, monkeypatch, command):
    monkeypatch.setenv("DATABASE_URL", empty_database_url)

    result = invoke(*command)

    assert "schema is missing or older than this version" in result.output
    assert "run `odock-sync db upgrade`" in result.output


def test_db_upgrade_of_a_database_a_newer_version_migrated_changes_nothing(
    empty_database_url, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    engine = create_engine(empty_database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0999_from_the_future'"))

    result = invoke("db", "upgrade")

    assert "schema 0999_from_the_future" in result.output
    assert "a newer version migrated it" in result.output
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == (
            "0999_from_the_future"
        )
    engine.dispose()


def test_a_read_only_database_is_a_clean_error_and_keeps_nothing(empty_database_url, monkeypatch):
    """A PostgreSQL standby (or default_transaction_read_only), a SQLite file opened read-only."""
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    engine = create_engine(empty_database_url)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            name = engine.url.database
            connection.execute(
                text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            )
        engine.dispose()  # new connections take the setting
    else:
        path = empty_database_url.removeprefix("sqlite:///")
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///file:{path}?mode=ro&uri=true")

    result = invoke("org", "create", "--name", "Acme")

    assert "cannot use the database:" in result.output
    assert "read-only" in result.output or "readonly" in result.output
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM organisations")) == 0
    engine.dispose()
