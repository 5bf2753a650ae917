"""Access end dates and departure notices (issue 19, items 1 and 2)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-04 16:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENTERPRISE_LEAVE_DATE = (
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeLeaveDateTime"
)


def _moment(name: str) -> sa.Column:
    return sa.Column(name, models.base.UTCDateTime(timezone=True), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(_moment("access_ends_at"))
        batch_op.add_column(sa.Column("access_ends_source", sa.String(length=32), nullable=True))
        batch_op.add_column(_moment("departure_notice_for"))
        # The due scan is a range on (status, access_ends_at); people with no date are not in it.
        batch_op.create_index(
            "ix_users_access_end_due",
            ["status", "access_ends_at"],
            unique=False,
            postgresql_where=sa.text("access_ends_at IS NOT NULL"),
            sqlite_where=sa.text("access_ends_at IS NOT NULL"),
        )
    with op.batch_alter_table("organisation_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("departure_notice_days", sa.Integer(), nullable=False, server_default="7")
        )
        batch_op.add_column(
            sa.Column(
                "scim_access_end_attribute",
                sa.String(length=255),
                nullable=False,
                server_default=ENTERPRISE_LEAVE_DATE,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("organisation_settings", schema=None) as batch_op:
        batch_op.drop_column("scim_access_end_attribute")
        batch_op.drop_column("departure_notice_days")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_access_end_due")
        batch_op.drop_column("departure_notice_for")
        batch_op.drop_column("access_ends_source")
        batch_op.drop_column("access_ends_at")
