"""Identity links: no foreign key from `organisation_id` to the organisations

`identity_links.organisation_id` had its own foreign key to `organisations` (ON DELETE
CASCADE) beside the one to `users`. The second says nothing the first does not: every link
belongs to a user (`user_id` is not null, ON DELETE CASCADE), the user row holds the
organisation under its own foreign key, and deleting an organisation removes its users and,
through them, their links. The check still cost a lookup and a `FOR KEY SHARE` lock of the
organisation row per link: about 0.35 s of PostgreSQL's CPU per 100,000 links in a first LDAP
import (docs/benchmarks/ldap.md), a check taken on the critical path of every import.

The column stays, with the unique constraint on (organisation_id, source, external_id) that
every lookup by stable id uses; that it names the user's organisation is the domain's rule
(the link is always written with its user: models/actions/identities.py,
models/directory/people_import.py), as it was before: the foreign key never checked it either.
A concurrent delete of the organisation is still held off during an import by the users'
own check, which locks the same organisation row.

SQLite rebuilds the table (batch mode); PostgreSQL drops the constraint in place.

Revision ID: 0036_identity_links_org_fk
Revises: 0035_bulk_write_defaults
Create Date: 2026-12-05 14:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0036_identity_links_org_fk"
down_revision: str | None = "0035_bulk_write_defaults"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONSTRAINT = "fk_identity_links_organisation_id_organisations"


def upgrade() -> None:
    with op.batch_alter_table("identity_links", schema=None) as batch_op:
        batch_op.drop_constraint(CONSTRAINT, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("identity_links", schema=None) as batch_op:
        batch_op.create_foreign_key(
            CONSTRAINT, "organisations", ["organisation_id"], ["id"], ondelete="CASCADE"
        )
