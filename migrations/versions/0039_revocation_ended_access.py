"""Revocations: the end date whose passing made the schedule revoke, and who set it

`revocations.ended_access_at` and `ended_access_source` (nullable; set only on the schedule's
revocations): the source that set the date brings the person back once it gives a later one
(a renewed contract, see models.actions.lifecycle.end_extended). Until now both were written
into the revocation's reason and parsed back; the schedule's revocations in force are filled
in from that reason here.

Revision ID: 0039_revocation_ended_access
Revises: 0038_revocation_standing_sources
Create Date: 2026-12-05 20:00:00.000000
"""

import re
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0039_revocation_ended_access"
down_revision: str | None = "0038_revocation_standing_sources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What models.actions.lifecycle.ended_access_reason wrote (5 Dec 2026, 5f6ca5c).
ENDED = re.compile(r"access ended at (?P<at>\S+) \(the date (?P<source>[a-z_]+) set\)")
# models.enums.Source's values as of this revision.
SOURCES = {
    "admin", "scim", "ldap", "okta", "events", "odock", "invitation", "manual", "schedule", "system"
}


def upgrade() -> None:
    with op.batch_alter_table("revocations") as batch_op:
        batch_op.add_column(
            sa.Column("ended_access_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("ended_access_source", sa.String(length=32), nullable=True))
    revocations = sa.table(
        "revocations",
        sa.column("id", sa.Uuid()),
        sa.column("source", sa.String()),
        sa.column("reason", sa.String()),
        sa.column("undone_at", models.base.UTCDateTime(timezone=True)),
        sa.column("ended_access_at", models.base.UTCDateTime(timezone=True)),
        sa.column("ended_access_source", sa.String()),
    )
    connection = op.get_bind()
    in_force = connection.execute(
        sa.select(revocations.c.id, revocations.c.reason).where(
            revocations.c.source == "schedule", revocations.c.undone_at.is_(None)
        )
    )
    for revocation_id, reason in in_force.all():
        found = ENDED.fullmatch(reason or "")
        if found is None or found["source"] not in SOURCES:
            continue  # made before the reason named the date: an admin brings them back
        connection.execute(
            revocations.update()
            .where(revocations.c.id == revocation_id)
            .values(
                ended_access_at=datetime.fromisoformat(found["at"]),
                ended_access_source=found["source"],
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("revocations") as batch_op:
        batch_op.drop_column("ended_access_source")
        batch_op.drop_column("ended_access_at")
