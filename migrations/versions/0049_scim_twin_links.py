"""SCIM groups that 0047 renamed as Unicode-normalisation twins are the IdP's groups again.

0047 cleared `external_source` on every twin it renamed, a SCIM group's included, though only
an LDAP twin needs it (an LDAP run finds its teams by name, and would delete one no group maps
to). An IdP addresses its group by id, which the rename kept: with the link cleared, its PATCH,
PUT, GET and DELETE of that id answered 404 and the group left GET /Groups, so the team's
members stayed as 0047 found them (a person the IdP took out of the group kept the team and
its keys; one it put in never joined), and a SCIM user's DELETE no longer took them out of it.

Each team whose 0047 `team.renamed` event shows `external_source` "scim" before, and still has
none, is a SCIM group again (its external id and members were never changed), audited
`team.source_restored` by `system:migration 0049` with before and after. A team since deleted
or linked again is left alone.

Revision ID: 0049_scim_twin_links
Revises: 0048_group_role_keys
Create Date: 2026-12-06 23:00:00.000000
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0049_scim_twin_links"
down_revision: str | None = "0048_group_role_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTOR = "system:migration 0049"
RENAMED_BY = "system:migration 0047"
SCIM = "scim"

teams = sa.table(
    "teams",
    sa.column("id", sa.Uuid()),
    sa.column("organisation_id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("external_source", sa.String()),
    sa.column("updated_at", models.base.UTCDateTime(timezone=True)),
)
audit_events = sa.table(
    "audit_events",
    sa.column("id", sa.Uuid()),
    sa.column("organisation_id", sa.Uuid()),
    sa.column("occurred_at", models.base.UTCDateTime(timezone=True)),
    sa.column("source", sa.String()),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("target_type", sa.String()),
    sa.column("target_id", sa.String()),
    sa.column("before", sa.JSON()),
    sa.column("after", sa.JSON()),
)


def _unlinked_scim_twins(connection: sa.Connection) -> list[uuid.UUID]:
    """The teams 0047 renamed that a SCIM push had made, by its audit events' before."""
    events = connection.execute(
        sa.select(audit_events.c.target_id, audit_events.c.before).where(
            audit_events.c.action == "team.renamed", audit_events.c.actor == RENAMED_BY
        )
    ).all()
    return sorted(
        uuid.UUID(e.target_id)
        for e in events
        if e.before and e.before.get("external_source") == SCIM
    )


def _restore(connection: sa.Connection, team: Any, now: datetime) -> None:
    connection.execute(
        teams.update().where(teams.c.id == team.id).values(external_source=SCIM, updated_at=now)
    )
    connection.execute(
        audit_events.insert().values(
            id=uuid.uuid4(),
            organisation_id=team.organisation_id,
            occurred_at=now,
            source="system",
            actor=ACTOR,
            action="team.source_restored",
            target_type="team",
            target_id=str(team.id),
            before={"id": str(team.id), "name": team.name, "external_source": None},
            after={
                "id": str(team.id),
                "name": team.name,
                "external_source": SCIM,
                "reason": "a SCIM group 0047 renamed as a twin: its IdP addresses it by id",
            },
        )
    )


def upgrade() -> None:
    connection = op.get_bind()
    ids = _unlinked_scim_twins(connection)
    if not ids:
        return
    now = datetime.now(UTC)
    for team in connection.execute(
        sa.select(teams.c.id, teams.c.organisation_id, teams.c.name)
        .where(teams.c.id.in_(ids), teams.c.external_source.is_(None))
        .order_by(teams.c.id)
    ).all():
        _restore(connection, team, now)


def downgrade() -> None:
    """Nothing to undo: a SCIM group without its link is the loss this repairs (the audit
    trail has what changed)."""
