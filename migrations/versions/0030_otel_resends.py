"""Notification deliveries can be re-sent (issue 17, item 4): how often, and how many attempts
came before the last re-send (a re-send gets a fresh budget of attempts).

Revision ID: 0030_otel
Revises: 0029_consoleoidc
Create Date: 2026-12-04 20:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030_otel"
down_revision: str | None = "0029_consoleoidc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resends", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("attempts_at_resend", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.drop_column("attempts_at_resend")
        batch_op.drop_column("resends")
