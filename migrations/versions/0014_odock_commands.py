"""The Odock bridge, outbound: key commands to the store and proof at the gateway (issue 12)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMAND_TYPES = ("key.revoke", "key.restore", "key.reassign", "key.rotate_request")


def _moment(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, models.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "key_commands",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column(
            "command_type",
            sa.Enum(*COMMAND_TYPES, name="keycommandtype", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("owner_user_id", sa.Uuid(), nullable=True),
        sa.Column("owner_team_id", sa.Uuid(), nullable=True),
        _moment("issued_at", nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _moment("last_attempt_at"),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        _moment("acknowledged_at"),
        _moment("applied_at"),
        _moment("gateway_invalidated_at"),
        _moment("gateway_checked_at"),
        sa.Column("gateway_accepted", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_key_commands_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_commands")),
    )
    with op.batch_alter_table("key_commands", schema=None) as batch_op:
        batch_op.create_index("ix_key_commands_key", ["key_id", "issued_at"], unique=False)
        batch_op.create_index(
            "ix_key_commands_unacknowledged",
            ["key_id"],
            unique=False,
            postgresql_where=sa.text("acknowledged_at IS NULL"),
            sqlite_where=sa.text("acknowledged_at IS NULL"),
        )
    with op.batch_alter_table("review_findings", schema=None) as batch_op:
        batch_op.add_column(_moment("store_acknowledged_at"))
        batch_op.add_column(sa.Column("gateway_proof", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_findings", schema=None) as batch_op:
        batch_op.drop_column("gateway_proof")
        batch_op.drop_column("store_acknowledged_at")
    op.drop_table("key_commands")
