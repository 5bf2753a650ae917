"""User search: one trigram index over the email and the name instead of two (PostgreSQL)

The admin API's user search (`GET /api/v1/users?q=`) finds the users whose email or
lower-cased name contains the text. 0002 gave each field its own GIN trigram index
(`ix_users_email_key_trgm`, `ix_users_name_trgm`); every user written paid for both, about
1.1 s of PostgreSQL's CPU in a first LDAP import of 100,000 people, the largest single cost of
the users' rows (docs/benchmarks/ldap.md).

`ix_users_search_trgm` indexes one expression, `email_key || E'\\x1f' || lower(name)`, and the
search asks `LIKE '%text%'` of that very expression (models/queries/users.py, `search_text`).
The results are the same: the separator is a control character that a term never holds (a
term that does is matched field by field, unindexed), so a term is found in the joined text
exactly where it is found in the email or in the name, never across the two. One index
insert per user instead of two, and the trigrams the email and the name share (a person's
name is often in their email) are stored once.

Only where pg_trgm is available, as 0002; elsewhere the search works unindexed. The build
holds writes to `users` for its duration (seconds per 100,000 users).

Revision ID: 0037_user_search_one_index
Revises: 0036_identity_links_org_fk
Create Date: 2026-12-05 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0037_user_search_one_index"
down_revision: str | None = "0036_identity_links_org_fk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_users_search_trgm"
EXPRESSION = "(email_key || E'\\x1f' || lower(name)) gin_trgm_ops"
# 0002's, which this one replaces (and a downgrade builds again).
SEPARATE = {
    "ix_users_email_key_trgm": "email_key gin_trgm_ops",
    "ix_users_name_trgm": "lower(name) gin_trgm_ops",
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for name in SEPARATE:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    if _trigrams_available(bind):
        op.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON users USING gin ({EXPRESSION})")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    if _trigrams_available(bind):
        for name, expression in SEPARATE.items():
            op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON users USING gin ({expression})")


def _trigrams_available(bind: sa.Connection) -> bool:
    """pg_trgm is there or may be created here (0002's check)."""
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
