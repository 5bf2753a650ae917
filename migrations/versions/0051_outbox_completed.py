"""Completed outbox messages indexed by when they completed, for the purge that deletes them
after OUTBOX_RETENTION_DAYS: it finds the old ones without reading the whole table.

Revision ID: 0051_outbox_completed
Revises: 0050_store_command_revocations
Create Date: 2026-12-07 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0051_outbox_completed"
down_revision: str | None = "0050_store_command_revocations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMPLETED = sa.text("completed_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_completed",
        "outbox",
        ["completed_at"],
        postgresql_where=COMPLETED,
        sqlite_where=COMPLETED,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_completed", table_name="outbox")
