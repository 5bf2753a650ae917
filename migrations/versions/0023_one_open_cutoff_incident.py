"""One open cut-off incident per organisation, as a database fact: two reapers running at once
each opened one (and each alarmed). Extra open incidents already there are closed first.

Revision ID: 0023
Revises: 0021
Create Date: 2026-12-04 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "cleared_at IS NULL"


def upgrade() -> None:
    op.execute(
        """
        UPDATE cutoff_incidents SET cleared_at = opened_at
        WHERE cleared_at IS NULL AND EXISTS (
            SELECT 1 FROM cutoff_incidents AS older
            WHERE older.organisation_id = cutoff_incidents.organisation_id
              AND older.cleared_at IS NULL
              AND (older.opened_at < cutoff_incidents.opened_at
                   OR (older.opened_at = cutoff_incidents.opened_at
                       AND older.id < cutoff_incidents.id))
        )
        """
    )
    op.create_index(
        "ix_cutoff_incidents_open",
        "cutoff_incidents",
        ["organisation_id"],
        unique=True,
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_cutoff_incidents_open",
        table_name="cutoff_incidents",
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )
