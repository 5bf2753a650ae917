"""OpenID Connect subjects: the provider account (iss, sub) each person signs in to the
console with, bound at their first sign-in there.

Revision ID: 0040_oidc_subjects
Revises: 0039_revocation_ended_access
Create Date: 2026-12-05 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0040_oidc_subjects"
down_revision: str | None = "0039_revocation_ended_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oidc_subjects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("issuer", sa.String(length=2000), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_oidc_subjects_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_oidc_subjects_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oidc_subjects")),
        sa.UniqueConstraint("user_id", "issuer", name=op.f("uq_oidc_subjects_user_id_issuer")),
    )
    op.create_index(
        op.f("ix_oidc_subjects_organisation_id"), "oidc_subjects", ["organisation_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_oidc_subjects_organisation_id"), table_name="oidc_subjects")
    op.drop_table("oidc_subjects")
