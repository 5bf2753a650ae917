"""The Odock bridge, inbound: keys, budgets, quotas, usage from the management plane (issue 12)

Objects carry Odock's version; deleted ones leave a tombstone; usage records keep Odock's id
(unique per organisation, the idempotency key of a push); event signing secrets and reconcile
runs get a table each.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Most keys have no team and were revoked by no revocation: a bulk load of keys writes two
# index entries fewer per key when only the keys that have one are indexed.
PARTIAL_INDEXES = [
    ("ix_virtual_api_keys_owner_team", "owner_team_id"),
    ("ix_virtual_api_keys_revocation", "revoked_by_revocation_id"),
]


def _version() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("version", sa.BigInteger(), server_default="0", nullable=False)


def upgrade() -> None:
    for name, column in PARTIAL_INDEXES:
        op.drop_index(name, table_name="virtual_api_keys")
        op.create_index(
            name,
            "virtual_api_keys",
            [column],
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
        )
    with op.batch_alter_table("virtual_api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revealed_by_user_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("revealed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(_version())
        batch_op.create_foreign_key(
            batch_op.f("fk_virtual_api_keys_revealed_by_user_id_users"),
            "users",
            ["revealed_by_user_id"],
            ["id"],
            ondelete="SET NULL",
        )
    for table in ("budgets", "quotas"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(_version())
    with op.batch_alter_table("quotas", schema=None) as batch_op:
        batch_op.alter_column("limit", type_=sa.BigInteger(), existing_nullable=False)
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column("requests", sa.BigInteger(), server_default="1", nullable=False)
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_usage_records_organisation_id_external_id"),
            ["organisation_id", "external_id"],
        )
    op.create_table(
        "odock_tombstones",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("object_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_odock_tombstones_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "organisation_id", "kind", "object_id", name=op.f("pk_odock_tombstones")
        ),
    )
    op.create_table(
        "odock_bridges",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("signing_secrets", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_odock_bridges_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organisation_id", name=op.f("pk_odock_bridges")),
    )
    op.create_table(
        "odock_reconcile_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_odock_reconcile_runs_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_odock_reconcile_runs")),
    )
    op.create_index(
        "ix_odock_reconcile_runs_org_started",
        "odock_reconcile_runs",
        ["organisation_id", "started_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_odock_reconcile_runs_org_started", table_name="odock_reconcile_runs")
    op.drop_table("odock_reconcile_runs")
    op.drop_table("odock_bridges")
    op.drop_table("odock_tombstones")
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_usage_records_organisation_id_external_id"), type_="unique"
        )
        batch_op.drop_column("requests")
        batch_op.drop_column("external_id")
    with op.batch_alter_table("quotas", schema=None) as batch_op:
        batch_op.alter_column("limit", type_=sa.Integer(), existing_nullable=False)
    for table in ("quotas", "budgets"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("version")
    with op.batch_alter_table("virtual_api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_virtual_api_keys_revealed_by_user_id_users"), type_="foreignkey"
        )
        batch_op.drop_column("version")
        batch_op.drop_column("revealed_at")
        batch_op.drop_column("revealed_by_user_id")
    for name, column in PARTIAL_INDEXES:
        op.drop_index(name, table_name="virtual_api_keys")
        op.create_index(name, "virtual_api_keys", [column])
