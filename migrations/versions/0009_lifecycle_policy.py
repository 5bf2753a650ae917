"""One lifecycle policy: refusals, leaver rules (issue 13)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("organisation_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "leaver_invitation_policy",
                sa.Enum(
                    "revoke",
                    "keep",
                    name="leaverinvitationpolicy",
                    native_enum=False,
                    length=32,
                ),
                nullable=False,
                server_default="revoke",
            )
        )
    existing = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("invitations")}
    if "ix_invitations_invited_by" not in existing:
        with op.batch_alter_table("invitations", schema=None) as batch_op:
            batch_op.create_index("ix_invitations_invited_by", ["invited_by_user_id"])


def downgrade() -> None:
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_index("ix_invitations_invited_by")
    with op.batch_alter_table("organisation_settings", schema=None) as batch_op:
        batch_op.drop_column("leaver_invitation_policy")
