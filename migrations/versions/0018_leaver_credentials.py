"""Every credential of a leaver, and key commands that end (issues 20 and 12)

Revision ID: 0018
Revises: 0014
Create Date: 2026-12-04 13:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0018"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_POLICY = sa.Enum("revoke", "hold", name="keypolicy", native_enum=False, length=32)


def upgrade() -> None:
    with op.batch_alter_table("organisation_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("org_key_policy", KEY_POLICY, nullable=False, server_default="hold")
        )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revoked_by_revocation_id", sa.Uuid(), nullable=True))
    with op.batch_alter_table("key_commands", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gateway_proof", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("abandoned_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("key_commands", schema=None) as batch_op:
        batch_op.drop_column("abandoned_at")
        batch_op.drop_column("gateway_proof")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("revoked_by_revocation_id")
    with op.batch_alter_table("organisation_settings", schema=None) as batch_op:
        batch_op.drop_column("org_key_policy")
