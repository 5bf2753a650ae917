"""Each store command names the revocation whose decision it carries (`revocation_id`: its
revoke, a reassignment decided in its review, the restore or thaw of its undoing), so that a
security admin can tell which revocation sent a command (docs/odock.md). Commands issued
before keep none: the revocation of a key's current revoke is still the key's
`revoked_by_revocation_id`.

Revision ID: 0050_store_command_revocations
Revises: 0049_scim_twin_links
Create Date: 2026-12-07 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0050_store_command_revocations"
down_revision: str | None = "0049_scim_twin_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAMED = sa.text("revocation_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("store_commands") as batch_op:
        batch_op.add_column(sa.Column("revocation_id", sa.Uuid(), nullable=True))
    op.create_index(
        "ix_store_commands_revocation",
        "store_commands",
        ["revocation_id"],
        postgresql_where=NAMED,
        sqlite_where=NAMED,
    )


def downgrade() -> None:
    op.drop_index("ix_store_commands_revocation", table_name="store_commands")
    with op.batch_alter_table("store_commands") as batch_op:
        batch_op.drop_column("revocation_id")
