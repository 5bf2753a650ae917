"""Revocations: which identity sources still hold the person inactive

`revocations.standing_sources` (JSON, nullable): when a second identity source asserts a
revoked person inactive (SCIM active=false after an LDAP revocation, or a SCIM deactivation
the mass-change gate held and another source's revocation overtook), the person comes back
only once every such source lets go, whatever order they arrive in. NULL (every existing
row): the revoking source alone, as before.

Revision ID: 0038_revocation_standing_sources
Revises: 0037_user_search_one_index
Create Date: 2026-12-05 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0038_revocation_standing_sources"
down_revision: str | None = "0037_user_search_one_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("revocations") as batch_op:
        batch_op.add_column(sa.Column("standing_sources", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("revocations") as batch_op:
        batch_op.drop_column("standing_sources")
