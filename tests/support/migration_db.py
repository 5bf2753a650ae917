"""A database of a migration test's own (it is taken down and up again), of the session's
kind: a SQLite file, or a PostgreSQL database created beside DATABASE_URL's and dropped."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from models.migrate import alembic_config


def own_database(tmp_path: Path) -> Iterator[Engine]:
    """Yield the engine of an empty database of the test's own; dropped after."""
    configured = os.environ.get("DATABASE_URL", "")
    if not configured or configured.startswith("sqlite"):
        engine = create_engine(f"sqlite:///{tmp_path / 'before.sqlite3'}")
        yield engine
        engine.dispose()
        return
    admin_url = make_url(configured.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"odock_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(admin_url.set(database=name))
    yield engine
    engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
