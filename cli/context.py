"""What every command needs: the settings and a transaction on the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from models.actor import Actor
from models.enums import Source
from models.errors import DomainError
from models.settings import Settings, SettingsError, load_settings
from worker.runtime import init_runtime

CLI_ACTOR = Actor(Source.ADMIN, "cli")


def cli_settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def database_errors() -> Iterator[None]:
    """A database that cannot be reached is a one-line error, not a traceback."""
    try:
        yield
    except OperationalError as exc:
        first_line = str(exc.orig or exc).strip().splitlines()[0][:300]
        raise click.ClickException(f"cannot use the database: {first_line}") from None


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
