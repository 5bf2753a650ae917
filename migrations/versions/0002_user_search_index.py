"""trigram indexes for searching users by substring (PostgreSQL with pg_trgm only)

Revision ID: 0002
Revises: 0001

The admin API searches users with `LIKE '%text%'` on the email and the lower-cased name. At
100,000 users that is a 100 ms sequential scan on PostgreSQL; GIN trigram indexes make it
about 1 ms. They need the pg_trgm extension: where it is not available (or may not be
created), the search still works, only slower. SQLite is left as it is (embedded use is small).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_users_email_key_trgm": "email_key gin_trgm_ops",
    "ix_users_name_trgm": "lower(name) gin_trgm_ops",
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _trigrams_available(bind):
        return
    for name, expression in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON users USING gin ({expression})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")


def _trigrams_available(bind: sa.Connection) -> bool:
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).scalar()
    if not available:
        return False
    try:
        with bind.begin_nested():  # a refusal (no privilege) must not abort the migration
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        return False
    return True
