"""Audit trail you can read and stream, and source health (issue 17)

Revision ID: 0022
Revises: 0017
Create Date: 2026-12-04 13:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0022"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _moment(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, models.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor_user_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("seq", SEQ, nullable=True))
        batch_op.create_index("ix_audit_events_time", ["occurred_at", "id"], unique=False)
        batch_op.create_index("ix_audit_events_seq", ["seq"], unique=True)
        batch_op.create_index("ix_audit_events_org_seq", ["organisation_id", "seq"], unique=False)
        batch_op.create_index(
            "ix_audit_events_unsequenced",
            ["occurred_at"],
            unique=False,
            postgresql_where=sa.text("seq IS NULL"),
            sqlite_where=sa.text("seq IS NULL"),
        )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("organisation_settings", schema=None) as batch_op:
        for name, default in (
            ("scim_silence_seconds", 24 * 3600),
            ("ldap_silence_seconds", 3 * 3600),
            ("idp_events_silence_seconds", 24 * 3600),
            ("stream_failure_seconds", 15 * 60),
        ):
            batch_op.add_column(
                sa.Column(name, sa.Integer(), nullable=False, server_default=str(default))
            )
    op.create_table(
        "audit_streams",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "preset",
            sa.Enum("generic", "splunk", name="streampreset", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("target", sa.String(length=2000), nullable=False),
        sa.Column("signing_secrets", sa.JSON(), nullable=False),
        sa.Column("splunk_token_sealed", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("cursor_seq", SEQ, nullable=False),
        sa.Column("pending_from_seq", SEQ, nullable=True),
        sa.Column("pending_through_seq", SEQ, nullable=True),
        _moment("claimed_until"),
        _moment("next_attempt_at"),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        _moment("first_failure_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _moment("last_success_at"),
        sa.Column("events_sent", SEQ, nullable=False),
        _moment("created_at", nullable=False),
        _moment("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_audit_streams_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_streams")),
    )
    op.create_index("ix_audit_streams_org", "audit_streams", ["organisation_id"], unique=False)
    op.create_table(
        "source_incidents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=80), nullable=False),
        _moment("opened_at", nullable=False),
        _moment("cleared_at"),
        sa.Column("reason", sa.Text(), nullable=False),
        _moment("last_seen_at"),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_source_incidents_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_incidents")),
    )
    op.create_index(
        "ix_source_incidents_open",
        "source_incidents",
        ["organisation_id", "source"],
        unique=True,
        postgresql_where=sa.text("cleared_at IS NULL"),
        sqlite_where=sa.text("cleared_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("source_incidents")
    op.drop_table("audit_streams")
    with op.batch_alter_table("organisation_settings", schema=None) as batch_op:
        for name in (
            "stream_failure_seconds",
            "idp_events_silence_seconds",
            "ldap_silence_seconds",
            "scim_silence_seconds",
        ):
            batch_op.drop_column(name)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("request_id")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_unsequenced")
        batch_op.drop_index("ix_audit_events_org_seq")
        batch_op.drop_index("ix_audit_events_seq")
        batch_op.drop_index("ix_audit_events_time")
        batch_op.drop_column("seq")
        batch_op.drop_column("request_id")
        batch_op.drop_column("actor_user_id")
