"""Directory connectors keep the stable id (entryUUID, objectGUID) of each mapped group, so a
group renamed or moved in the directory keeps its team and role.

Revision ID: 0041_directory_group_ids
Revises: 0040_oidc_subjects
Create Date: 2026-12-06 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0041_directory_group_ids"
down_revision: str | None = "0040_oidc_subjects"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing connectors start with no ids: their next sync binds each mapped group it
    # finds by name or DN, as it finds them now.
    with op.batch_alter_table("directory_connectors") as batch_op:
        batch_op.add_column(sa.Column("group_ids", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("directory_connectors") as batch_op:
        batch_op.alter_column("group_ids", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("directory_connectors") as batch_op:
        batch_op.drop_column("group_ids")
