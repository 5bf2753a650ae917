"""Team names composed (NFC) and keyed by the one rule of connectors.name_keys (composed, then
lower case): a team saved in NFD ("Cafe" and U+0301, from the admin API, the CLI, a directory
or an IdP event) gets the composed name and the key SCIM's composed "Café" finds; so do the
group names keying SCIM group roles. A row whose new key another row of the organisation
holds already (two teams the old rule kept apart) is left as it was and reported: two teams
are never merged here. ASCII names are the same under both rules.

Revision ID: 0045_team_name_keys
Revises: 0044_invitation_retry_at
Create Date: 2026-12-06 14:20:00.000000
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from connectors.name_keys import composed, name_key

revision: str = "0045_team_name_keys"
down_revision: str | None = "0044_invitation_retry_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")


def _rekey_teams() -> None:
    connection = op.get_bind()
    teams = sa.table(
        "teams",
        sa.column("id", sa.Uuid()),
        sa.column("organisation_id", sa.Uuid()),
        sa.column("name", sa.String()),
        sa.column("name_key", sa.String()),
        sa.column("created_at", sa.DateTime()),
    )
    rows = connection.execute(
        sa.select(teams.c.id, teams.c.organisation_id, teams.c.name, teams.c.name_key).order_by(
            teams.c.created_at, teams.c.id
        )
    ).all()
    for team_id, organisation_id, name, key in rows:
        if name.isascii():
            continue
        new_name = composed(name.strip())
        new_key = name_key(new_name)
        if (new_name, new_key) == (name, key):
            continue
        if new_key != key and connection.scalar(
            sa.select(sa.func.count())
            .select_from(teams)
            .where(
                teams.c.organisation_id == organisation_id,
                teams.c.name_key == new_key,
                teams.c.id != team_id,
            )
        ):
            log.warning(
                "team %s keeps its name %r: another team of organisation %s is named %r "
                "composed; rename or delete one of them",
                team_id,
                name,
                organisation_id,
                new_key,
            )
            continue
        connection.execute(
            teams.update().where(teams.c.id == team_id).values(name=new_name, name_key=new_key)
        )


def _rekey_group_roles() -> None:
    connection = op.get_bind()
    roles = sa.table(
        "scim_group_roles",
        sa.column("organisation_id", sa.Uuid()),
        sa.column("group_name_key", sa.String()),
        sa.column("group_name", sa.String()),
    )
    rows = connection.execute(
        sa.select(roles.c.organisation_id, roles.c.group_name_key, roles.c.group_name)
    ).all()
    for organisation_id, key, name in rows:
        if key.isascii() and name.isascii():
            continue
        new_key, new_name = name_key(composed(key)), composed(name)
        if (new_key, new_name) == (key, name):
            continue
        if new_key != key and connection.scalar(
            sa.select(sa.func.count())
            .select_from(roles)
            .where(roles.c.organisation_id == organisation_id, roles.c.group_name_key == new_key)
        ):
            log.warning(
                "group role of %r in organisation %s keeps its key: %r is mapped already",
                name,
                organisation_id,
                new_key,
            )
            continue
        connection.execute(
            roles.update()
            .where(roles.c.organisation_id == organisation_id, roles.c.group_name_key == key)
            .values(group_name_key=new_key, group_name=new_name)
        )


def upgrade() -> None:
    _rekey_teams()
    _rekey_group_roles()


def downgrade() -> None:
    """Nothing to undo: the old rule's key of a composed name (trimmed, lower case) is the
    new rule's, and the decomposed spelling a name was saved in is not kept."""
