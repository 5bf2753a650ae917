"""The time-to-kill clock travels with each cut-off (issue 13 item 6)

Whoever the gateway acknowledges a cut-off to, its own invalidation task or the reaper,
observes the revocation's time to kill from these columns, once.

Revision ID: 0029_drain
Revises: 0026
Create Date: 2026-12-04 20:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0029_drain"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("key_cutoffs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("clock_source", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("arrived_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("key_cutoffs", schema=None) as batch_op:
        batch_op.drop_column("arrived_at")
        batch_op.drop_column("clock_source")
