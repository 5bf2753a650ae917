"""Bringing a database to the newest schema with Alembic, from code or the CLI."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

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

    config = alembic_config()
    with engine.begin() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        if current is not None and current not in _revisions()[1]:
            raise NewerSchema(current)  # Alembic's own error is a traceback naming no version
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@cache
def _revisions() -> tuple[str, frozenset[str]]:
    """This version's head revision and every revision it knows."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    assert head is not None  # one line of migrations (land.sh refuses two heads)
    return head, frozenset(script.revision for script in scripts.walk_revisions())


def schema_problem(connection: Connection) -> str | None:
    """Why this version cannot serve from the database's schema, or None when it can.

    A revision this version does not know was made by a newer one, which a rolling upgrade
    runs before the older processes stop (`db upgrade` first): that one is served from.
    """
    from alembic.runtime.migration import MigrationContext

    current = MigrationContext.configure(connection).get_current_revision()
    head, known = _revisions()
    if current is None:
        return "no schema: run `odock-sync db upgrade`"
    if current != head and current in known:
        return f"schema {current} is older than {head}: run `odock-sync db upgrade`"
    return None
