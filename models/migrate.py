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


class NewerSchema(Exception):
    """The database is at a revision this version does not have: a newer one migrated it."""

    def __init__(self, revision: str) -> None:
        super().__init__(
            f"the database is at schema {revision}, which this version of odock-sync does not"
            " know: a newer version migrated it (run that version, or restore a backup)"
        )
        self.revision = revision


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = alembic_config()
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    with engine.begin() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        if current is not None and current not in known:
            raise NewerSchema(current)  # Alembic's own error is a traceback naming no version
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
