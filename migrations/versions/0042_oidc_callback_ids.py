"""OpenID Connect providers: a callback id each (their own redirect URIs, RFC 9700 section
4.4.2); the providers set before keep the shared callback they were registered with.

Revision ID: 0042_oidc_callback_ids
Revises: 0041_directory_group_ids
Create Date: 2026-12-06 04:00:00.000000
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0042_oidc_callback_ids"
down_revision: str | None = "0041_directory_group_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

providers = sa.table(
    "oidc_providers",
    sa.column("organisation_id", sa.Uuid()),
    sa.column("callback_id", sa.String(32)),
)


def upgrade() -> None:
    with op.batch_alter_table("oidc_providers") as batch_op:
        batch_op.add_column(sa.Column("callback_id", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("shared_callback", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    connection = op.get_bind()
    for organisation_id in connection.scalars(sa.select(providers.c.organisation_id)).all():
        connection.execute(
            providers.update()
            .where(providers.c.organisation_id == organisation_id)
            .values(callback_id=secrets.token_hex(16))
        )
    with op.batch_alter_table("oidc_providers") as batch_op:
        batch_op.alter_column("callback_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.alter_column("shared_callback", server_default=None)
        batch_op.create_unique_constraint(
            batch_op.f("uq_oidc_providers_callback_id"), ["callback_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("oidc_providers") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_oidc_providers_callback_id"), type_="unique")
        batch_op.drop_column("shared_callback")
        batch_op.drop_column("callback_id")
