"""Migration 0042_oidc_callback_ids: every provider set before gets a callback id of its own
and keeps the shared callback it was registered with (its sign-ins go on working)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, insert, select

from models.entities import Organisation
from models.migrate import upgrade
from tests.support.migration_db import downgrade, own_database

BEFORE = "0041_directory_group_ids"


@pytest.fixture
def blank_engine(tmp_path: Path) -> Iterator[Engine]:
    yield from own_database(tmp_path)


def providers_table(*more: str) -> sa.TableClause:
    return sa.table(
        "oidc_providers",
        sa.column("organisation_id", sa.Uuid()),
        *(sa.column(name) for name in ("issuer", "client_id", "sealed_client_secret")),
        *(sa.column(name) for name in ("display_name", "created_at", "updated_at", *more)),
    )


def test_providers_set_before_keep_the_shared_callback_and_get_an_id_each(
    blank_engine: Engine,
):
    upgrade(blank_engine, BEFORE)
    now = datetime.now(UTC)
    orgs = [uuid.uuid4(), uuid.uuid4()]
    with blank_engine.begin() as connection:
        for number, org_id in enumerate(orgs):
            connection.execute(
                insert(Organisation.__table__).values(
                    id=org_id, name=f"Org {number}", slug=f"org-{number}", created_at=now,
                    updated_at=now,
                )
            )  # fmt: skip
            connection.execute(
                insert(providers_table()).values(
                    organisation_id=org_id, issuer=f"https://idp{number}.example",
                    client_id="odock", sealed_client_secret="sealed", display_name="IdP",
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip

    upgrade(blank_engine, "head")

    with blank_engine.connect() as connection:
        rows = connection.execute(select(providers_table("callback_id", "shared_callback"))).all()
    ids = [row.callback_id for row in rows]
    assert all(re.fullmatch("[0-9a-f]{32}", found) for found in ids) and len(set(ids)) == 2
    assert [bool(row.shared_callback) for row in rows] == [True, True]

    downgrade(blank_engine, BEFORE)
    columns = {c["name"] for c in sa.inspect(blank_engine).get_columns("oidc_providers")}
    assert not columns & {"callback_id", "shared_callback"}
