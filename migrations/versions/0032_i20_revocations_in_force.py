"""Revocations in force by time: the cut-off reaper opens the reviews whose task was lost

Revision ID: 0032_i20_revocations
Revises: 0031_ldap_run_status
Create Date: 2026-12-04 23:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032_i20_revocations"
down_revision: str | None = "0031_ldap_run_status"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IN_FORCE = sa.text("undone_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_revocations_in_force",
        "revocations",
        ["revoked_at"],
        postgresql_where=IN_FORCE,
        sqlite_where=IN_FORCE,
    )


def downgrade() -> None:
    op.drop_index("ix_revocations_in_force", table_name="revocations")
