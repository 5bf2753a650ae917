"""Migration 0039_revocation_ended_access: the schedule's revocations in force get the end
date and its source from the reason they were written into; every other revocation, and one
made before the reason named them, gets none (an admin brings that person back)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, insert, select

from models.base import UTCDateTime
from models.entities import Organisation, User
from models.migrate import upgrade
from tests.support.migration_db import downgrade, own_database

BEFORE = "0038_revocation_standing_sources"
ENDED = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)


@pytest.fixture
def blank_engine(tmp_path: Path) -> Iterator[Engine]:
    yield from own_database(tmp_path)


def revocations_table() -> sa.TableClause:
    return sa.table(
        "revocations",
        *(sa.column(name, sa.Uuid()) for name in ("id", "organisation_id", "user_id")),
        *(sa.column(name) for name in ("source", "actor", "reason", "previous_status")),
        *(sa.column(name, UTCDateTime()) for name in ("revoked_at", "undone_at")),
    )


def test_the_schedules_revocations_in_force_get_their_end_date_from_the_reason(
    blank_engine: Engine,
):
    upgrade(blank_engine, BEFORE)
    org_id, user_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    rows = {
        "renewable": ("schedule", "access ended at 2026-11-30T17:00:00Z (the date ldap set)", None),
        "undone": ("schedule", "access ended at 2026-11-30T17:00:00Z (the date scim set)", now),
        "older": ("schedule", "access ended at 2026-11-30T17:00:00+00:00", None),
        "by_ldap": ("ldap", "access ended at 2026-11-30T17:00:00Z (the date ldap set)", None),
    }
    ids = {name: uuid.uuid4() for name in rows}
    with blank_engine.begin() as connection:
        connection.execute(
            insert(Organisation.__table__).values(
                id=org_id, name="Acme", slug="acme", created_at=now, updated_at=now
            )
        )
        connection.execute(
            insert(User.__table__).values(
                id=user_id,
                organisation_id=org_id,
                name="Ann",
                email="ann@example.com",
                email_key="ann@example.com",
                role="USER",
                status="REVOKED",
                created_at=now,
                updated_at=now,
            )
        )
        for name, (source, reason, undone_at) in rows.items():
            connection.execute(
                insert(revocations_table()).values(
                    id=ids[name],
                    organisation_id=org_id,
                    user_id=user_id,
                    source=source,
                    actor=source,
                    reason=reason,
                    previous_status="ACTIVE",
                    revoked_at=now,
                    undone_at=undone_at,
                )
            )

    upgrade(blank_engine, "head")

    filled = sa.table(
        "revocations",
        sa.column("id", sa.Uuid()),
        sa.column("ended_access_at", UTCDateTime()),
        sa.column("ended_access_source"),
    )
    with blank_engine.connect() as connection:
        found = {
            row.id: (row.ended_access_at, row.ended_access_source)
            for row in connection.execute(select(filled))
        }
    assert found == {
        ids["renewable"]: (ENDED, "ldap"),
        ids["undone"]: (None, None),
        ids["older"]: (None, None),
        ids["by_ldap"]: (None, None),
    }

    downgrade(blank_engine, BEFORE)
    columns = {c["name"] for c in sa.inspect(blank_engine).get_columns("revocations")}
    assert "ended_access_at" not in columns and "reason" in columns
