"""OpenID Connect sign-in on the web console too: a sign-in under way names its place
(enrollment or console) and organisation; only an enrollment sign-in has an invitation.

Revision ID: 0029_consoleoidc
Revises: 0029_bridge
Create Date: 2026-12-04 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029_consoleoidc"
down_revision: str | None = "0029_bridge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oidc_sign_ins", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("place", sa.String(length=32), nullable=False, server_default="enrollment")
        )
        batch_op.add_column(sa.Column("organisation_id", sa.Uuid(), nullable=True))
    # Sign-ins under way (ten minutes at most) keep working: their organisation is the
    # invitation's.
    op.execute(
        "UPDATE oidc_sign_ins SET organisation_id = (SELECT invitations.organisation_id "
        "FROM invitations WHERE invitations.id = oidc_sign_ins.invitation_id)"
    )
    with op.batch_alter_table("oidc_sign_ins", schema=None) as batch_op:
        batch_op.alter_column("place", server_default=None)
        batch_op.alter_column("organisation_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.alter_column("invitation_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.create_foreign_key(
            batch_op.f("fk_oidc_sign_ins_organisation_id_organisations"),
            "organisations",
            ["organisation_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    op.execute("DELETE FROM oidc_sign_ins WHERE invitation_id IS NULL")
    with op.batch_alter_table("oidc_sign_ins", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_oidc_sign_ins_organisation_id_organisations"), type_="foreignkey"
        )
        batch_op.alter_column("invitation_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_column("organisation_id")
        batch_op.drop_column("place")
