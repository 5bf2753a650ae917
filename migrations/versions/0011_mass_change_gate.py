"""Mass-change gate for push sources: held destructive changes (issue 13)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.base import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SOURCE = sa.Enum(
    "admin",
    "scim",
    "ldap",
    "okta",
    "events",
    "invitation",
    "manual",
    "schedule",
    "system",
    name="source",
    native_enum=False,
    length=32,
)
KIND = sa.Enum("deactivate", "delete", "role_drop", name="changekind", native_enum=False, length=32)
STATUS = sa.Enum(
    "applied",
    "held",
    "approved",
    "discarded",
    "superseded",
    name="changestatus",
    native_enum=False,
    length=32,
)


def _organisation_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organisation_id"],
        ["organisations.id"],
        name=op.f(f"fk_{table}_organisation_id_organisations"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "mass_change_settings",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("threshold_count", sa.Integer(), nullable=False),
        sa.Column("threshold_percent", sa.Integer(), nullable=False),
        sa.Column("window_minutes", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        _organisation_fk("mass_change_settings"),
        sa.PrimaryKeyConstraint("organisation_id", name=op.f("pk_mass_change_settings")),
    )
    op.create_table(
        "mass_change_gates",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("source", SOURCE, nullable=False),
        sa.Column("counted_since", UTCDateTime(timezone=True), nullable=True),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("tripped_at", UTCDateTime(timezone=True), nullable=True),
        _organisation_fk("mass_change_gates"),
        sa.PrimaryKeyConstraint("organisation_id", "source", name=op.f("pk_mass_change_gates")),
    )
    op.create_table(
        "mass_changes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("source", SOURCE, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", KIND, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=255), nullable=False),
        _organisation_fk("mass_changes"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_mass_changes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mass_changes")),
    )
    op.create_index(
        "ix_mass_changes_window", "mass_changes", ["organisation_id", "source", "created_at"]
    )
    op.create_index("ix_mass_changes_user", "mass_changes", ["user_id", "status"])
    op.create_index("ix_mass_changes_batch", "mass_changes", ["batch_id"])
    with op.batch_alter_table("scim_users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("held_inactive", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("scim_users", schema=None) as batch_op:
        batch_op.drop_column("held_inactive")
    op.drop_index("ix_mass_changes_batch", table_name="mass_changes")
    op.drop_index("ix_mass_changes_user", table_name="mass_changes")
    op.drop_index("ix_mass_changes_window", table_name="mass_changes")
    op.drop_table("mass_changes")
    op.drop_table("mass_change_gates")
    op.drop_table("mass_change_settings")
