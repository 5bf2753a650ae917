"""Email keys by the one rule of connectors.email_address (NFKC and lower case, IDNA domains):
the keys of addresses beyond ASCII or with an A-label domain are written again; the others
are the same under both rules. A key that another row of the organisation holds already (two
people whose addresses the old rule kept apart) stays as it was, and is reported.

Revision ID: 0043_email_keys
Revises: 0042_oidc_callback_ids
Create Date: 2026-12-06 13:00:00.000000
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from connectors.email_address import email_key

revision: str = "0043_email_keys"
down_revision: str | None = "0042_oidc_callback_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

# table, its id column, the address, its key, and whether a key is unique per organisation
KEYED = (
    ("users", "id", "email", "email_key", True),
    ("invitations", "id", "email", "email_key", False),
    ("scim_emails", "id", "value", "value_key", False),
)


def _table(name: str, ident: str, value: str, key: str) -> sa.TableClause:
    return sa.table(
        name,
        sa.column(ident, sa.Uuid()),
        sa.column("organisation_id", sa.Uuid()),
        sa.column(value, sa.String()),
        sa.column(key, sa.String()),
    )


def _rekey(name: str, ident: str, value: str, key: str, unique: bool) -> None:
    connection = op.get_bind()
    table = _table(name, ident, value, key)
    rows = connection.execute(
        sa.select(table.c[ident], table.c.organisation_id, table.c[value])
    ).all()
    changes = [
        (row[0], row[1], email_key(row[2]))
        for row in rows
        if not row[2].isascii() or "xn--" in row[2].lower()
    ]
    for row_id, organisation_id, new_key in changes:
        if unique and connection.scalar(
            sa.select(sa.func.count())
            .select_from(table)
            .where(
                table.c.organisation_id == organisation_id,
                table.c[key] == new_key,
                table.c[ident] != row_id,
            )
        ):
            log.warning("%s %s keeps its email key: another row holds %r", name, row_id, new_key)
            continue
        connection.execute(table.update().where(table.c[ident] == row_id).values({key: new_key}))


def _rekey_pending() -> None:
    """A pending invitation's key is its invitation's (one pending per key): written again
    after the invitations'."""
    connection = op.get_bind()
    pending = sa.table(
        "pending_invitations",
        sa.column("invitation_id", sa.Uuid()),
        sa.column("organisation_id", sa.Uuid()),
        sa.column("email_key", sa.String()),
    )
    invitations = _table("invitations", "id", "email", "email_key")
    rows = connection.execute(
        sa.select(pending.c.invitation_id, pending.c.organisation_id, invitations.c.email_key)
        .join(invitations, invitations.c.id == pending.c.invitation_id)
        .where(invitations.c.email_key != pending.c.email_key)
    ).all()
    for invitation_id, organisation_id, new_key in rows:
        taken = connection.scalar(
            sa.select(sa.func.count())
            .select_from(pending)
            .where(pending.c.organisation_id == organisation_id, pending.c.email_key == new_key)
        )
        if taken:
            log.warning("pending invitation %s keeps its email key %r", invitation_id, new_key)
            continue
        connection.execute(
            pending.update()
            .where(pending.c.invitation_id == invitation_id)
            .values(email_key=new_key)
        )


def upgrade() -> None:
    for keyed in KEYED:
        _rekey(*keyed)
    _rekey_pending()


def downgrade() -> None:
    """The old rule's keys again: trimmed and lower-cased (a key two rows would share then
    is left as it is)."""
    connection = op.get_bind()
    for name, ident, value, key, unique in KEYED:
        table = _table(name, ident, value, key)
        rows = connection.execute(
            sa.select(table.c[ident], table.c.organisation_id, table.c[value], table.c[key])
        ).all()
        for row_id, organisation_id, address, current in rows:
            old = address.strip().lower()
            if old == current:
                continue
            if unique and connection.scalar(
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c.organisation_id == organisation_id, table.c[key] == old)
            ):
                continue
            connection.execute(table.update().where(table.c[ident] == row_id).values({key: old}))
    _rekey_pending()
