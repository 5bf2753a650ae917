"""Migration 0033_store_commands: key_commands becomes store_commands in place, its rows,
indexes and constraints kept under their new names, and back on downgrade; on the session's
database kind (a database of the test's own, since it is taken down and up again)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, insert, inspect, select
from sqlalchemy.orm import Session

from models.base import UTCDateTime
from models.entities import Organisation, StoreCommand
from models.migrate import upgrade
from tests.support.migration_db import downgrade, own_database

BEFORE = "0032_i20_revocations"
AFTER = "0033_store_commands"


@pytest.fixture
def blank_engine(tmp_path: Path) -> Iterator[Engine]:
    yield from own_database(tmp_path)


def key_commands_table() -> sa.TableClause:
    return sa.table(
        "key_commands",
        *(sa.column(name, sa.Uuid()) for name in ("id", "organisation_id", "key_id")),
        *(sa.column(name) for name in ("command_type", "reason", "attempts")),
        sa.column("issued_at", UTCDateTime()),
    )


def names(engine: Engine, table: str) -> dict[str, object]:
    found = inspect(engine)
    return {
        "columns": [c["name"] for c in found.get_columns(table)][:3],
        "indexes": sorted(i["name"] for i in found.get_indexes(table)),
        "primary_key": found.get_pk_constraint(table)["name"],
        "foreign_keys": [fk["name"] for fk in found.get_foreign_keys(table)],
    }


def test_key_commands_become_store_commands_with_their_rows_and_back(blank_engine: Engine):
    upgrade(blank_engine, BEFORE)
    org_id, key_command, budget_command = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    key_id, budget_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    with blank_engine.begin() as connection:
        connection.execute(
            insert(Organisation.__table__).values(
                id=org_id, name="Acme", slug="acme", created_at=now, updated_at=now
            )
        )
        for command_id, subject, kind in (
            (key_command, key_id, "key.revoke"),
            (budget_command, budget_id, "budget.freeze"),
        ):
            connection.execute(
                insert(key_commands_table()).values(
                    id=command_id,
                    organisation_id=org_id,
                    key_id=subject,
                    command_type=kind,
                    reason="left",
                    attempts=0,
                    issued_at=now,
                )
            )

    upgrade(blank_engine, AFTER)

    assert not inspect(blank_engine).has_table("key_commands")
    assert names(blank_engine, "store_commands") == {
        "columns": ["id", "organisation_id", "subject_id"],
        "indexes": ["ix_store_commands_subject", "ix_store_commands_unacknowledged"],
        "primary_key": "pk_store_commands",
        "foreign_keys": ["fk_store_commands_organisation_id_organisations"],
    }
    upgrade(blank_engine, "head")  # the model as it is now reads the rows 0033 renamed
    with Session(blank_engine) as session:
        rows = session.scalars(select(StoreCommand).order_by(StoreCommand.command_type)).all()
        assert [(c.id, c.subject_id, c.subject_type) for c in rows] == [
            (budget_command, budget_id, "budget"),
            (key_command, key_id, "key"),
        ]

    downgrade(blank_engine, BEFORE)

    assert not inspect(blank_engine).has_table("store_commands")
    assert names(blank_engine, "key_commands") == {
        "columns": ["id", "organisation_id", "key_id"],
        "indexes": ["ix_key_commands_key", "ix_key_commands_unacknowledged"],
        "primary_key": "pk_key_commands",
        "foreign_keys": ["fk_key_commands_organisation_id_organisations"],
    }
    with blank_engine.connect() as connection:
        kept = connection.execute(
            select(key_commands_table().c.key_id).order_by(key_commands_table().c.command_type)
        ).scalars()
        assert list(kept) == [budget_id, key_id]
