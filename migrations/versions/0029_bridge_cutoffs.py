"""Store commands ride the cut-off reaper: a cut-off names the store command it carries and the
time-to-kill clock of its revocation (issue 20 with the bridge of issue 12).

Unsettled rotation requests issued before this had no cut-off (their Celery retry chain carried
them); each gets one now, so the reaper sends them.

Revision ID: 0029_bridge
Revises: 0026
Create Date: 2026-12-04 20:00:00.000000
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from models.base import UTCDateTime

revision: str = "0029_bridge"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("key_cutoffs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("command_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("source", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("arrived_at", sa.Double(), nullable=True))
    _cutoffs_for_unsettled_rotation_requests()


def _cutoffs_for_unsettled_rotation_requests() -> None:
    commands = sa.table(
        "key_commands",
        sa.column("id", sa.Uuid()),
        sa.column("organisation_id", sa.Uuid()),
        sa.column("key_id", sa.Uuid()),
        sa.column("command_type", sa.String()),
        sa.column("acknowledged_at", UTCDateTime()),
        sa.column("abandoned_at", UTCDateTime()),
    )
    rows = (
        op.get_bind()
        .execute(
            sa.select(commands.c.id, commands.c.organisation_id, commands.c.key_id).where(
                commands.c.command_type == "key.rotate_request",
                commands.c.acknowledged_at.is_(None),
                commands.c.abandoned_at.is_(None),
            )
        )
        .all()
    )
    if not rows:
        return
    now = datetime.now(UTC)
    cutoffs = sa.table(
        "key_cutoffs",
        *(sa.column(name, sa.Uuid()) for name in ("id", "organisation_id", "key_id", "command_id")),
        *(sa.column(name, sa.String()) for name in ("command", "reason")),
        sa.column("via_store", sa.Boolean()),
        *(sa.column(name, UTCDateTime()) for name in ("requested_at", "next_attempt_at")),
        sa.column("attempts", sa.Integer()),
    )
    op.bulk_insert(
        cutoffs,
        [
            {
                "id": uuid.uuid4(),
                "organisation_id": row.organisation_id,
                "key_id": row.key_id,
                "command_id": row.id,
                "command": "key.rotate_request",
                "reason": "rotation request (before 0029)",
                "via_store": True,
                "requested_at": now,
                "next_attempt_at": now,
                "attempts": 0,
            }
            for row in rows
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("key_cutoffs", schema=None) as batch_op:
        batch_op.drop_column("arrived_at")
        batch_op.drop_column("source")
        batch_op.drop_column("command_id")
