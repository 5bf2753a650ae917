"""Teams that 0045 left beside their twin get a name of their own. Two teams of one
organisation whose names differ only by Unicode normalisation ("Café" composed, and "Cafe" with
U+0301) were two teams under the old key rule; 0045 could not give the decomposed one the
composed name's key, so it kept its old key, which no lookup computes any more
(connectors.name_keys): a name found the composed twin, and an LDAP run read the other's
members under a key it never plans for, and removed them from the composed twin by name.

Now every team's key is its name's key again. The team that holds the composed key keeps it;
each other twin, oldest first, is renamed "<composed name> (2)" (or the first free number),
its members, keys, budgets and links untouched, audited `team.renamed` by `system:migration
0047`. Every twin it renames that a directory or an IdP had made (any external_source, LDAP
and SCIM alike) loses that link (external_source cleared, in the same event). For an LDAP twin
that is meant: no group maps to its new name, and an LDAP run would otherwise delete it as
retired; its directory memberships follow the directory to the composed team, as a run plans.
For a SCIM twin it was a mistake (the IdP addresses its group by id, which the rename keeps):
its pushes of that group answered 404 and its members stopped following the IdP, until
migration 0049 restored the link of each SCIM twin this one renamed.

Revision ID: 0047_team_name_twins
Revises: 0046_odock_unseen
Create Date: 2026-12-06 19:00:00.000000
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

import models.base
from connectors.name_keys import composed, name_key

revision: str = "0047_team_name_twins"
down_revision: str | None = "0046_odock_unseen"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTOR = "system:migration 0047"
NAME_LENGTH = 200

teams = sa.table(
    "teams",
    sa.column("id", sa.Uuid()),
    sa.column("organisation_id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("name_key", sa.String()),
    sa.column("external_source", sa.String()),
    sa.column("created_at", sa.DateTime()),
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


def _free_name(connection: sa.Connection, organisation_id: uuid.UUID, name: str) -> str:
    """The composed name, or (its twin holding it) `name (n)`, n from 2: the first whose key no
    team of the organisation holds."""
    for number in range(1, 10_000):
        suffix = f" ({number})" if number > 1 else ""
        candidate = composed(name)[: NAME_LENGTH - len(suffix)].rstrip() + suffix
        taken = connection.scalar(
            sa.select(sa.func.count())
            .select_from(teams)
            .where(
                teams.c.organisation_id == organisation_id,
                teams.c.name_key == name_key(candidate),
            )
        )
        if not taken:
            return candidate
    raise RuntimeError(f"no free name for a twin of {name!r} in organisation {organisation_id}")


def _rename(connection: sa.Connection, team: Any, now: datetime) -> None:
    name = _free_name(connection, team.organisation_id, team.name.strip())
    before = {"name": team.name, "name_key": team.name_key}
    after: dict[str, Any] = {"name": name, "reason": "a twin by Unicode normalisation (0045)"}
    values: dict[str, Any] = {"name": name, "name_key": name_key(name), "updated_at": now}
    if team.external_source is not None:
        before["external_source"] = team.external_source
        after["external_source"] = values["external_source"] = None
    connection.execute(teams.update().where(teams.c.id == team.id).values(**values))
    connection.execute(
        audit_events.insert().values(
            id=uuid.uuid4(),
            organisation_id=team.organisation_id,
            occurred_at=now,
            source="system",
            actor=ACTOR,
            action="team.renamed",
            target_type="team",
            target_id=str(team.id),
            before=before,
            after=after,
        )
    )


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            teams.c.id,
            teams.c.organisation_id,
            teams.c.name,
            teams.c.name_key,
            teams.c.external_source,
        ).order_by(teams.c.created_at, teams.c.id)
    ).all()
    now = datetime.now(UTC)
    for team in rows:
        if not team.name.isascii() and team.name_key != name_key(team.name.strip()):
            _rename(connection, team, now)


def downgrade() -> None:
    """Nothing to undo: the twins keep the names they were given (the audit trail has the
    old ones), and two teams whose names differ only by normalisation are what 0045 refuses."""
