"""What every command needs: the settings and a transaction on the database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy.exc import DBAPIError, InternalError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from models.actor import Actor
from models.enums import Source
from models.errors import DomainError
from models.observability import configure_logging
from models.settings import Settings, SettingsError, load_settings
from worker.runtime import init_runtime

CLI_ACTOR = Actor(Source.ADMIN, "cli")


# Where `serve` notes the URL it serves at (in the working directory, beside the embedded
# database), so that `demo` and every link a command prints follow `serve --port`.
SERVE_URL_FILE = "odock-sync-serve.url"


def cli_settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(settings)  # redacted lines on stderr: stdout keeps a command's output
    url = None if named_in_environment("PUBLIC_BASE_URL") else running_serve_url()
    return settings.model_copy(update={"public_base_url": url}) if url else settings


def running_serve_url(directory: Path = Path()) -> str | None:
    """The URL of the `serve` running from this directory, if one is."""
    try:
        pid, url = (directory / SERVE_URL_FILE).read_text().split(maxsplit=1)
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return None
    return url.strip()


def named_in_environment(name: str) -> bool:
    return any(key.upper() == name for key in os.environ)


# What a database says of a table or column the statement names and the schema lacks: a
# database never migrated, or migrated by an older version (SQLite's messages; PostgreSQL's
# SQLSTATE undefined_table and undefined_column).
MISSING_SCHEMA_MESSAGES = ("no such table", "no such column")
MISSING_SCHEMA_SQLSTATES = frozenset({"42P01", "42703"})
# PostgreSQL's read_only_sql_transaction: a standby, or default_transaction_read_only set on
# the database or role (SQLite's read-only file is an OperationalError already).
READ_ONLY_SQLSTATE = "25006"


@contextmanager
def database_errors() -> Iterator[None]:
    """A database that cannot be reached, is read-only or lacks our schema: one line."""
    try:
        yield
    except (OperationalError, ProgrammingError, InternalError) as exc:
        first_line = str(exc.orig or exc).strip().splitlines()[0][:300]
        if _missing_schema(exc, first_line):
            raise click.ClickException(
                f"cannot use the database: its schema is missing or older than this version"
                f" ({first_line}); run `odock-sync db upgrade`"
            ) from None
        if isinstance(exc, ProgrammingError):
            raise  # a statement of ours the schema should take: a bug, shown as one
        if isinstance(exc, InternalError) and _sqlstate(exc) != READ_ONLY_SQLSTATE:
            raise
        raise click.ClickException(f"cannot use the database: {first_line}") from None


def upgrade_database(settings: Settings) -> str | None:
    """Bring the database to this version's schema (`db upgrade`, `serve`); its revision."""
    from models.db import make_engine
    from models.migrate import NewerSchema, current_revision, upgrade

    engine = make_engine(settings)
    try:
        with database_errors():
            upgrade(engine)
            return current_revision(engine)
    except NewerSchema as exc:
        raise click.ClickException(f"cannot upgrade the database: {exc}") from None
    finally:
        engine.dispose()


def _missing_schema(exc: DBAPIError, first_line: str) -> bool:
    sqlstate = _sqlstate(exc)
    return sqlstate in MISSING_SCHEMA_SQLSTATES or first_line.startswith(MISSING_SCHEMA_MESSAGES)


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A committed transaction, with domain errors shown as a clean CLI error."""
    from worker.celery_app import configure_celery

    settings = cli_settings()
    configure_celery(settings)
    runtime = init_runtime(settings)
    try:
        with database_errors(), runtime.sessions() as session:
            yield session
            session.commit()
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        runtime.engine.dispose()
