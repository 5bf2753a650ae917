"""Directory sync safety per connector: thresholds per kind of destructive change (issue 15)

The organisation's deprovision thresholds move to each of its connectors (`safety`), beside
the new ones for team removals and role demotions.

Revision ID: 0015
Revises: 0017
Create Date: 2026-12-04 13:40:00.000000
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("directory_connectors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("safety", sa.JSON(), nullable=False, server_default="{}"))
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT c.id, s.deprovision_threshold_count, s.deprovision_threshold_percent "
            "FROM directory_connectors c JOIN organisation_settings s "
            "ON s.organisation_id = c.organisation_id"
        )
    ).all()
    for connector_id, count, percent in rows:
        safety = {"thresholds": {"revoke": {"count": count, "percent": percent}}}
        bind.execute(
            sa.text("UPDATE directory_connectors SET safety = :safety WHERE id = :id"),
            {"safety": json.dumps(safety), "id": connector_id},
        )
    with op.batch_alter_table("organisation_settings", schema=None) as batch_op:
        batch_op.drop_column("deprovision_threshold_count")
        batch_op.drop_column("deprovision_threshold_percent")


def downgrade() -> None:
    with op.batch_alter_table("organisation_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "deprovision_threshold_count", sa.Integer(), nullable=False, server_default="50"
            )
        )
        batch_op.add_column(
            sa.Column(
                "deprovision_threshold_percent", sa.Integer(), nullable=False, server_default="10"
            )
        )
    with op.batch_alter_table("directory_connectors", schema=None) as batch_op:
        batch_op.drop_column("safety")
