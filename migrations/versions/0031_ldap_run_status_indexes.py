"""Directory sync runs: partial indexes for the reaper's running runs and the latest successful

Revision ID: 0031_ldap_run_status
Revises: 0030_otel
Create Date: 2026-12-04 20:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031_ldap_run_status"
down_revision: str | None = "0030_otel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNNING = sa.text("status = 'running'")
SUCCEEDED = sa.text("status IN ('succeeded', 'approved') AND dry_run IS false")


def upgrade() -> None:
    op.create_index(
        "ix_directory_sync_runs_succeeded",
        "directory_sync_runs",
        ["connector_id", "finished_at"],
        postgresql_where=SUCCEEDED,
        sqlite_where=SUCCEEDED,
    )
    op.create_index(
        "ix_directory_sync_runs_running",
        "directory_sync_runs",
        ["connector_id"],
        postgresql_where=RUNNING,
        sqlite_where=RUNNING,
    )


def downgrade() -> None:
    op.drop_index("ix_directory_sync_runs_running", table_name="directory_sync_runs")
    op.drop_index("ix_directory_sync_runs_succeeded", table_name="directory_sync_runs")
