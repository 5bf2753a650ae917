"""Key commands become store commands: the table holds budget commands too (issue 12)

`key_commands` -> `store_commands`, its `key_id` -> `subject_id` (a key's id for `key.*`
commands, a budget's for `budget.*`; the command type says which, so no kind column is added),
and its indexes and constraints renamed with it. Renamed in place: no row is copied on
PostgreSQL; SQLite, which cannot rename a constraint, rebuilds the table (batch mode).

Celery: the fast path's task is now `odock.send_store_commands`; `odock.send_key_commands`
stays registered (worker/tasks/odock.py) and routed to the urgent queue, for the messages an
older release left in the broker or in the outbox.

Revision ID: 0033_store_commands
Revises: 0032_i20_revocations
Create Date: 2026-12-05 00:00:00.000000
"""

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0033_store_commands"
down_revision: str | None = "0032_i20_revocations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNACKNOWLEDGED = sa.text("acknowledged_at IS NULL")


@dataclass(frozen=True)
class Names:
    table: str
    subject: str  # the column naming the key (or budget)
    subject_index: str

    @property
    def unacknowledged_index(self) -> str:
        return f"ix_{self.table}_unacknowledged"

    @property
    def primary_key(self) -> str:
        return f"pk_{self.table}"

    @property
    def foreign_key(self) -> str:
        return f"fk_{self.table}_organisation_id_organisations"


KEY_COMMANDS = Names("key_commands", "key_id", "ix_key_commands_key")
STORE_COMMANDS = Names("store_commands", "subject_id", "ix_store_commands_subject")


def upgrade() -> None:
    _rename(KEY_COMMANDS, STORE_COMMANDS)


def downgrade() -> None:
    _rename(STORE_COMMANDS, KEY_COMMANDS)


def _rename(old: Names, new: Names) -> None:
    op.drop_index(old.unacknowledged_index, table_name=old.table)
    op.drop_index(old.subject_index, table_name=old.table)
    if op.get_bind().dialect.name == "postgresql":
        op.rename_table(old.table, new.table)
        op.alter_column(new.table, old.subject, new_column_name=new.subject)
        for before, after in ((old.primary_key, new.primary_key), (old.foreign_key, new.foreign_key)):
            op.execute(f"ALTER TABLE {new.table} RENAME CONSTRAINT {before} TO {after}")
    else:
        op.rename_table(old.table, new.table)
        # The rebuilt table takes its constraints' names from this description, not from the
        # old table (whose names SQLite keeps in its CREATE TABLE text).
        with op.batch_alter_table(
            new.table, recreate="always", copy_from=_described(new, subject=old.subject)
        ) as batch_op:
            batch_op.alter_column(old.subject, new_column_name=new.subject)
    op.create_index(new.subject_index, new.table, [new.subject, "issued_at"])
    op.create_index(
        new.unacknowledged_index,
        new.table,
        [new.subject],
        postgresql_where=UNACKNOWLEDGED,
        sqlite_where=UNACKNOWLEDGED,
    )


def _described(names: Names, *, subject: str) -> sa.Table:
    """The table as it stands (its subject column still called `subject`), named `names`."""

    def moment(name: str, nullable: bool = True) -> sa.Column:
        return sa.Column(name, models.base.UTCDateTime(timezone=True), nullable=nullable)

    return sa.Table(
        names.table,
        sa.MetaData(),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column(subject, sa.Uuid(), nullable=False),
        sa.Column("command_type", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("owner_user_id", sa.Uuid(), nullable=True),
        sa.Column("owner_team_id", sa.Uuid(), nullable=True),
        moment("issued_at", nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        moment("last_attempt_at"),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        moment("acknowledged_at"),
        moment("applied_at"),
        moment("gateway_invalidated_at"),
        moment("gateway_checked_at"),
        sa.Column("gateway_accepted", sa.Boolean(), nullable=True),
        sa.Column("gateway_proof", sa.JSON(), nullable=True),
        moment("abandoned_at"),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=names.foreign_key,
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=names.primary_key),
    )
