"""Bringing a database to the newest schema with Alembic, from code or the CLI."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


# Indexes some migrations add only where the database supports them (PostgreSQL with
# pg_trgm, see 0002 and 0037); the models do not declare them, so schema comparison skips them.
OPTIONAL_INDEXES = frozenset(
    {"ix_users_search_trgm", "ix_users_email_key_trgm", "ix_users_name_trgm"}
)


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """For Alembic's autogenerate and comparison: leave the optional indexes alone."""
    return not (type_ == "index" and name in OPTIONAL_INDEXES)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
