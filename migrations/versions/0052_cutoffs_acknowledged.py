"""Acknowledged key cut-offs indexed by when they were acknowledged, for the purge that
deletes them after CUTOFF_RETENTION_DAYS without reading the whole table.

Revision ID: 0052_cutoffs_acknowledged
Revises: 0051_outbox_completed
Create Date: 2026-12-07 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0052_cutoffs_acknowledged"
down_revision: str | None = "0051_outbox_completed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACKNOWLEDGED = sa.text("acknowledged_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_key_cutoffs_acknowledged",
        "key_cutoffs",
        ["acknowledged_at"],
        postgresql_where=ACKNOWLEDGED,
        sqlite_where=ACKNOWLEDGED,
    )


def downgrade() -> None:
    op.drop_index("ix_key_cutoffs_acknowledged", table_name="key_cutoffs")
