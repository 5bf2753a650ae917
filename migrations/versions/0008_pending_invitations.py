"""pending_invitations: pending-email uniqueness and the expiry work list leave invitations,
whose rows then expire by HOT updates (no index involves status; fillfactor 50)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING_ONLY = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        "pending_invitations",
        sa.Column("invitation_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["invitations.id"],
            name=op.f("fk_pending_invitations_invitation_id_invitations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("invitation_id", name=op.f("pk_pending_invitations")),
    )
    op.execute(
        "INSERT INTO pending_invitations (invitation_id, organisation_id, email_key) "
        "SELECT id, organisation_id, email_key FROM invitations WHERE status = 'pending'"
    )
    op.create_index(
        "uq_pending_invitations_email",
        "pending_invitations",
        ["organisation_id", "email_key"],
        unique=True,
    )
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_index("ix_invitations_pending_expiry")
        batch_op.drop_index("uq_invitations_pending_email")
    if op.get_bind().dialect.name == "postgresql":
        # Applies to pages written from now on; `VACUUM FULL invitations` rewrites old ones.
        op.execute("ALTER TABLE invitations SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE invitations RESET (fillfactor)")
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.create_index(
            "uq_invitations_pending_email",
            ["organisation_id", "email_key"],
            unique=True,
            postgresql_where=PENDING_ONLY,
            sqlite_where=PENDING_ONLY,
        )
        batch_op.create_index(
            "ix_invitations_pending_expiry",
            ["expires_at"],
            unique=False,
            postgresql_where=PENDING_ONLY,
            sqlite_where=PENDING_ONLY,
        )
    op.drop_index("uq_pending_invitations_email", table_name="pending_invitations")
    op.drop_table("pending_invitations")
