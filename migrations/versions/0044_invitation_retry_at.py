"""A failed invitation email keeps its send until the next attempt is due: the attempt's
retry_at, so another copy of the delivery task waits until then instead of sending early.

Revision ID: 0044_invitation_retry_at
Revises: 0043_email_keys
Create Date: 2026-12-06 14:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0044_invitation_retry_at"
down_revision: str | None = "0043_email_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Attempts that failed before have none: their retries are already under way.
    with op.batch_alter_table("invitation_deliveries") as batch_op:
        batch_op.add_column(sa.Column("retry_at", models.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invitation_deliveries") as batch_op:
        batch_op.drop_column("retry_at")
