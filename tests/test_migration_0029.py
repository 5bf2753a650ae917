"""Migration 0029_bridge: an unsettled rotation request issued before it (carried by a Celery
retry chain then) gets a cut-off, so the reaper sends it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import create_engine, insert, select

from models.base import UTCDateTime
from models.entities import KeyCutoff, Organisation
from models.enums import StoreCommandType
from models.migrate import upgrade

# The table as it stood at 0026 (0033 renamed it store_commands, its key_id subject_id).
KEY_COMMANDS = sa.table(
    "key_commands",
    *(sa.column(name, sa.Uuid()) for name in ("id", "organisation_id", "key_id")),
    *(sa.column(name) for name in ("command_type", "reason", "attempts")),
    *(sa.column(name, UTCDateTime()) for name in ("issued_at", "acknowledged_at")),
)


def test_an_unsettled_rotation_request_gets_a_cutoff_and_a_settled_one_does_not(
    tmp_path: Path,
):
    engine = create_engine(f"sqlite:///{tmp_path / 'before-0029.sqlite3'}")
    upgrade(engine, "0026")
    org_id, pending, settled = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(Organisation.__table__).values(
                id=org_id, name="Acme", slug="acme", created_at=now, updated_at=now
            )
        )
        for command_id, acknowledged_at in ((pending, None), (settled, now)):
            connection.execute(
                insert(KEY_COMMANDS).values(
                    id=command_id,
                    organisation_id=org_id,
                    key_id=uuid.uuid4(),
                    command_type=StoreCommandType.ROTATE_REQUEST.value,
                    reason="rotate",
                    issued_at=now,
                    attempts=1,
                    acknowledged_at=acknowledged_at,
                )
            )

    upgrade(engine, "head")

    with engine.connect() as connection:
        rows = connection.execute(
            select(KeyCutoff.command_id, KeyCutoff.via_store, KeyCutoff.acknowledged_at)
        ).all()
    assert rows == [(pending, True, None)]
    engine.dispose()
