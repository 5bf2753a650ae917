"""Keys, budgets and quotas that a complete listing of Odock's management plane lacks are no
longer deleted at once: they are marked unseen (since when, and by how many consecutive
complete listings) and forgotten only after ODOCK_FORGET_AFTER_LISTINGS of them (docs/odock.md).
Rows held before are seen.

Revision ID: 0046_odock_unseen
Revises: 0045_team_name_keys
Create Date: 2026-12-06 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0046_odock_unseen"
down_revision: str | None = "0045_team_name_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("virtual_api_keys", "budgets", "quotas")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(
                sa.Column("unseen_since", models.base.UTCDateTime(timezone=True), nullable=True)
            )
            batch_op.add_column(
                sa.Column("unseen_listings", sa.Integer(), server_default="0", nullable=False)
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("unseen_listings")
            batch_op.drop_column("unseen_since")
