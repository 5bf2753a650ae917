"""OpenID Connect sign-in on the enrollment pages: providers and sign-ins under way (issue 18)

Revision ID: 0027
Revises: 0023
Create Date: 2026-12-04 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0027"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _moment(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, models.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "oidc_providers",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("issuer", sa.String(length=2000), nullable=False),
        sa.Column("client_id", sa.String(length=500), nullable=False),
        sa.Column("sealed_client_secret", sa.Text(), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        _moment("created_at"),
        _moment("updated_at"),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_oidc_providers_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organisation_id", name=op.f("pk_oidc_providers")),
    )
    op.create_table(
        "oidc_sign_ins",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("browser_hash", sa.String(length=64), nullable=False),
        sa.Column("invitation_id", sa.Uuid(), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        _moment("created_at"),
        _moment("used_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["invitations.id"],
            name=op.f("fk_oidc_sign_ins_invitation_id_invitations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oidc_sign_ins")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_oidc_sign_ins_state_hash")),
    )
    op.create_index(
        op.f("ix_oidc_sign_ins_invitation_id"), "oidc_sign_ins", ["invitation_id"], unique=False
    )
    op.create_index(
        op.f("ix_oidc_sign_ins_created_at"), "oidc_sign_ins", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_oidc_sign_ins_created_at"), table_name="oidc_sign_ins")
    op.drop_index(op.f("ix_oidc_sign_ins_invitation_id"), table_name="oidc_sign_ins")
    op.drop_table("oidc_sign_ins")
    op.drop_table("oidc_providers")
