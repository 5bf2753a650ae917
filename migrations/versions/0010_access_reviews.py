"""Access-change reviews: team deletion, manager loss, role drop (issue 13)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CAUSE = sa.Enum(
    "revocation",
    "team_deleted",
    "manager_role_lost",
    "left_team",
    "org_role_dropped",
    name="reviewcause",
    native_enum=False,
    length=32,
)
TEAM_KEY_POLICY = sa.Enum(
    "revoke", "reassign", name="deletedteamkeypolicy", native_enum=False, length=32
)


def upgrade() -> None:
    with op.batch_alter_table("revocation_reviews", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cause", CAUSE, nullable=False, server_default="revocation")
        )
        batch_op.add_column(sa.Column("team_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("context", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.alter_column("user_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.alter_column("revocation_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.create_index(
            "ix_revocation_reviews_org_cause", ["organisation_id", "cause"], unique=False
        )
    with op.batch_alter_table("organisation_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "deleted_team_key_policy",
                TEAM_KEY_POLICY,
                nullable=False,
                server_default="revoke",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("organisation_settings", schema=None) as batch_op:
        batch_op.drop_column("deleted_team_key_policy")
    op.execute("DELETE FROM revocation_reviews WHERE revocation_id IS NULL")
    with op.batch_alter_table("revocation_reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_revocation_reviews_org_cause")
        batch_op.alter_column("revocation_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.alter_column("user_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_column("context")
        batch_op.drop_column("team_id")
        batch_op.drop_column("cause")
