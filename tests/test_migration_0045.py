"""Migration 0045_team_name_keys: team names saved decomposed (NFD) are composed and keyed by
the one rule (connectors.name_keys); a team whose composed name another team of the
organisation holds already is left as it was, with a warning, never merged (0047 then gives it
a name of its own: tests/test_migration_0047.py)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from models.entities import Organisation, ScimGroupRole, Team
from models.enums import Role
from models.migrate import upgrade
from tests.support.migration_db import downgrade, own_database

BEFORE = "0044_invitation_retry_at"
REVISION = "0045_team_name_keys"


@pytest.fixture
def blank_engine(tmp_path: Path) -> Iterator[Engine]:
    yield from own_database(tmp_path)


def test_names_are_composed_where_no_other_team_holds_the_composed_one(
    blank_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(blank_engine, BEFORE)
    now = datetime.now(UTC)
    orgs = [uuid.uuid4(), uuid.uuid4()]
    names = {
        "composed": (orgs[0], "Caf\u00e9"),
        "clash": (orgs[0], "Cafe\u0301"),  # the old rule kept it apart from "composed"
        "decomposed": (orgs[0], "The\u0301 Room"),
        "elsewhere": (orgs[1], "Cafe\u0301"),  # another organisation's: no clash
        "plain": (orgs[0], "Platform"),
    }
    ids = {label: uuid.uuid4() for label in names}
    with blank_engine.begin() as connection:
        for n, org in enumerate(orgs):
            connection.execute(
                insert(Organisation.__table__).values(
                    id=org, name=f"Org {n}", slug=f"org-{n}", created_at=now, updated_at=now
                )
            )
        for n, (label, (org, name)) in enumerate(names.items()):
            created = now + timedelta(seconds=n)
            connection.execute(
                insert(Team.__table__).values(
                    id=ids[label], organisation_id=org, name=name, name_key=name.lower(),
                    created_at=created, updated_at=created,
                )
            )  # fmt: skip
        connection.execute(
            insert(ScimGroupRole.__table__).values(
                organisation_id=orgs[0], group_name_key="e\u0301quipe",
                group_name="E\u0301quipe", role=Role.MANAGER,
            )
        )  # fmt: skip

    with caplog.at_level(logging.WARNING, logger="alembic.runtime.migration"):
        upgrade(blank_engine, REVISION)

    with blank_engine.connect() as connection:
        teams = {row.id: (row.name, row.name_key) for row in connection.execute(select(Team))}
        roles = connection.execute(
            select(ScimGroupRole.group_name_key, ScimGroupRole.group_name)
        ).all()
    assert teams[ids["composed"]] == ("Caf\u00e9", "caf\u00e9")
    assert teams[ids["clash"]] == ("Cafe\u0301", "cafe\u0301")
    assert teams[ids["decomposed"]] == ("Th\u00e9 Room", "th\u00e9 room")
    assert teams[ids["elsewhere"]] == ("Caf\u00e9", "caf\u00e9")
    assert teams[ids["plain"]] == ("Platform", "platform")
    assert roles == [("\u00e9quipe", "\u00c9quipe")]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and str(ids["clash"]) in warned[0]

    downgrade(blank_engine, BEFORE)
    with blank_engine.connect() as connection:
        after = {row.id: (row.name, row.name_key) for row in connection.execute(select(Team))}
    assert after == teams
