"""Bulk writes: timestamps the database fills, audit JSON compressed with lz4 (PostgreSQL)

A first LDAP import writes some 550,000 timestamps for 100,000 people (users and identity
links: created and updated; memberships: created), all one moment, each parsed from text by
COPY: about 0.2 s of the database's CPU. `users.created_at` and `updated_at`,
`identity_links.created_at` and `updated_at` and `team_memberships.created_at` get the default
`now()` (the transaction's start), which a COPY that leaves them out uses
(models.directory.bulk_rows.Rows, `stamped`); every other write still gives them.

The audit trail's `before` and `after` are compressed with lz4 instead of pglz where the
server has it: an import's `user_batch` events list 2,000 people each (some 380 kB of JSON),
which pglz compressed with a third of the CPU (0.33 s for 50 such events against 0.11 s,
46% against 48% of the size). Values already stored keep their compression.

SQLite is left as it is (the bulk writes there give every column).

Revision ID: 0035_bulk_write_defaults
Revises: 0034_audit_seq_partial
Create Date: 2026-12-05 11:30:00.000000
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0035_bulk_write_defaults"
down_revision: str | None = "0034_audit_seq_partial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAMPED = {
    "users": ("created_at", "updated_at"),
    "identity_links": ("created_at", "updated_at"),
    "team_memberships": ("created_at",),
}
AUDIT_JSON = ("before", "after")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, columns in STAMPED.items():
        changes = ", ".join(f'ALTER COLUMN "{column}" SET DEFAULT now()' for column in columns)
        op.execute(f'ALTER TABLE "{table}" {changes}')
    if _has_lz4():
        _compress_audit_json("lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in STAMPED.items():
        changes = ", ".join(f'ALTER COLUMN "{column}" DROP DEFAULT' for column in columns)
        op.execute(f'ALTER TABLE "{table}" {changes}')
    if _has_lz4():
        _compress_audit_json("DEFAULT")


def _has_lz4() -> bool:
    """Whether this server was built with lz4 (PostgreSQL 14 and later, most packages)."""
    methods = op.get_bind().scalar(
        text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
    )
    return methods is not None and "lz4" in methods


def _compress_audit_json(method: str) -> None:
    changes = ", ".join(f'ALTER COLUMN "{column}" SET COMPRESSION {method}' for column in AUDIT_JSON)
    op.execute(f'ALTER TABLE "audit_events" {changes}')
