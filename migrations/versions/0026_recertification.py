"""Key recertification campaigns: policies, campaigns, findings with an owner (issue 19)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _moment(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, models.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "recertification_policies",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("every_days", sa.Integer(), nullable=False),
        _moment("anchor_at", nullable=False),
        sa.Column("deadline_days", sa.Integer(), nullable=False),
        sa.Column("spend_days", sa.Integer(), nullable=True),
        sa.Column("unused_days", sa.Integer(), nullable=True),
        sa.Column("moved_people", sa.Boolean(), nullable=False),
        sa.Column("inactive_days", sa.Integer(), nullable=False),
        sa.Column(
            "on_deadline",
            sa.Enum(
                "revoke", "escalate", name="recertdeadlinepolicy", native_enum=False, length=32
            ),
            nullable=False,
        ),
        _moment("created_at", nullable=False),
        _moment("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_recertification_policies_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organisation_id", name=op.f("pk_recertification_policies")),
    )
    op.create_table(
        "recertification_campaigns",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("slot", sa.String(length=64), nullable=False),
        sa.Column("review_id", sa.Uuid(), nullable=True),
        sa.Column("opened_by", sa.String(length=255), nullable=False),
        _moment("opened_at", nullable=False),
        _moment("deadline_at", nullable=False),
        _moment("enforced_at"),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        _moment("created_at", nullable=False),
        _moment("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_recertification_campaigns_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["review_id"],
            ["revocation_reviews.id"],
            name=op.f("fk_recertification_campaigns_review_id_revocation_reviews"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recertification_campaigns")),
        sa.UniqueConstraint(
            "organisation_id",
            "slot",
            name=op.f("uq_recertification_campaigns_organisation_id_slot"),
        ),
    )
    op.create_index(
        "ix_recertification_campaigns_due",
        "recertification_campaigns",
        ["deadline_at", "enforced_at"],
        unique=False,
    )
    with op.batch_alter_table("review_findings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_user_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            "ix_review_findings_owner",
            ["owner_user_id"],
            unique=False,
            postgresql_where=sa.text("owner_user_id IS NOT NULL"),
            sqlite_where=sa.text("owner_user_id IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("review_findings", schema=None) as batch_op:
        batch_op.drop_index("ix_review_findings_owner")
        batch_op.drop_column("owner_user_id")
    op.drop_index("ix_recertification_campaigns_due", table_name="recertification_campaigns")
    op.drop_table("recertification_campaigns")
    op.drop_table("recertification_policies")
