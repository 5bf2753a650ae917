"""Cut-offs with a deadline: one row per key invalidation until acknowledged; incidents (issue 20)

Revision ID: 0017
Revises: 0018
Create Date: 2026-12-04 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0017"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _moment(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, models.base.UTCDateTime(timezone=True), nullable=nullable)


def _organisation(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organisation_id"],
        ["organisations.id"],
        name=op.f(f"fk_{table}_organisation_id_organisations"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "key_cutoffs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("command", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=100), nullable=False),
        sa.Column("via_store", sa.Boolean(), nullable=False),
        _moment("requested_at", nullable=False),
        _moment("next_attempt_at", nullable=False),
        _moment("leased_until"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        _moment("acknowledged_at"),
        _moment("alarmed_at"),
        _organisation("key_cutoffs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_cutoffs")),
    )
    with op.batch_alter_table("key_cutoffs", schema=None) as batch_op:
        batch_op.create_index("ix_key_cutoffs_key", ["key_id"], unique=False)
        batch_op.create_index(
            "ix_key_cutoffs_pending",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("acknowledged_at IS NULL"),
            sqlite_where=sa.text("acknowledged_at IS NULL"),
        )
    op.create_table(
        "cutoff_incidents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        _moment("opened_at", nullable=False),
        _moment("cleared_at"),
        sa.Column("keys_overdue", sa.Integer(), nullable=False),
        _organisation("cutoff_incidents"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cutoff_incidents")),
    )
    with op.batch_alter_table("cutoff_incidents", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cutoff_incidents_org", ["organisation_id", "cleared_at"], unique=False
        )
    with op.batch_alter_table("review_findings", schema=None) as batch_op:
        batch_op.add_column(_moment("invalidation_requested_at"))


def downgrade() -> None:
    with op.batch_alter_table("review_findings", schema=None) as batch_op:
        batch_op.drop_column("invalidation_requested_at")
    op.drop_table("cutoff_incidents")
    op.drop_table("key_cutoffs")
