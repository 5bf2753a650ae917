"""Audit events: the stream-order indexes hold numbered events only (PostgreSQL)

`ix_audit_events_seq` and `ix_audit_events_org_seq` become partial, `WHERE seq IS NOT NULL`.
An event is written without its number (the sequencer gives it after commit), so until now
every insert added a NULL entry to both indexes that no query reads: every query on `seq`
compares it (`seq > cursor`, `max(seq)`), which PostgreSQL proves implies `seq IS NOT NULL`,
and the unnumbered events have `ix_audit_events_unsequenced`. Measured on a first LDAP import
of 30,000 people with 45,000 memberships (one audit event each): 11.1 -> 9.6 us of the
database's CPU per audit row, 69 -> 66 us per person in all. SQLite keeps the full indexes
(its min/max shortcut is not promised to use a partial index).

Rebuilt in place: each index is built again over the numbered events (writes to the audit
trail wait for the build).

Revision ID: 0034_audit_seq_partial
Revises: 0033_store_commands
Create Date: 2026-12-05 05:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0034_audit_seq_partial"
down_revision: str | None = "0033_store_commands"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NUMBERED = sa.text("seq IS NOT NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_audit_events_org_seq", table_name="audit_events")
    op.drop_index("ix_audit_events_seq", table_name="audit_events")
    op.create_index(
        "ix_audit_events_seq", "audit_events", ["seq"], unique=True, postgresql_where=NUMBERED
    )
    op.create_index(
        "ix_audit_events_org_seq",
        "audit_events",
        ["organisation_id", "seq"],
        unique=False,
        postgresql_where=NUMBERED,
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_audit_events_org_seq", table_name="audit_events")
    op.drop_index("ix_audit_events_seq", table_name="audit_events")
    op.create_index("ix_audit_events_seq", "audit_events", ["seq"], unique=True)
    op.create_index(
        "ix_audit_events_org_seq", "audit_events", ["organisation_id", "seq"], unique=False
    )
