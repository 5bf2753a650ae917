"""SCIM group roles keyed again by their group's name under the one rule of connectors.name_keys,
and 0045's silent changes audited after the fact.

0045 left two kinds of group-role mappings under a key no lookup computes, so the group they
name grants nothing (a role is granted by joining the mapping's key to the team's name key):
- a mapping whose composed key another mapping held already (an admin had mapped "Équipe"
  typed decomposed beside the composed one) kept its old, decomposed key;
- it re-keyed the others from their old key (the name in lower case), not from their name:
  lower case and composition do not commute for some letters (Greek "Ϊ́", with its accent),
  so such a key is not the one the name's team has ("ΐ" composed in one, not the other).
Each mapping now takes the key of its name. When two mappings collapse into one key, the one
left grants the higher of their roles: a mapping says its members hold at least that role (of a
person's groups the highest counts), so both still hold. Each changed mapping is audited
`scim.group_role.rekeyed` by `system:migration 0048`, before and after.

0045 also composed team names and group-role names without an audit event. Where the audit
trail still shows the name it replaced (a team's last `team.created` / `team.renamed`, a
mapping's last `scim.group_role.set`), that change is audited now (`team.renamed`,
`scim.group_role.rekeyed`, reason naming 0045). A name changed with no trail is only logged:
the old spelling is kept nowhere else.

Revision ID: 0048_group_role_keys
Revises: 0047_team_name_twins
Create Date: 2026-12-06 22:00:00.000000
"""

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from alembic import op

import models.base
from connectors.name_keys import composed, name_key

revision: str = "0048_group_role_keys"
down_revision: str | None = "0047_team_name_twins"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTOR = "system:migration 0048"
BY_0045 = "composed (NFC) by migration 0045, which wrote no audit event"
ROLE_RANK = {"USER": 0, "MANAGER": 1, "ORG_ADMIN": 2, "SUPER_ADMIN": 3}

log = logging.getLogger("alembic.runtime.migration")

roles = sa.table(
    "scim_group_roles",
    sa.column("organisation_id", sa.Uuid()),
    sa.column("group_name_key", sa.String()),
    sa.column("group_name", sa.String()),
    sa.column("role", sa.String()),
)
teams = sa.table(
    "teams",
    sa.column("id", sa.Uuid()),
    sa.column("organisation_id", sa.Uuid()),
    sa.column("name", sa.String()),
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


def _audit(connection: sa.Connection, now: datetime, **event: Any) -> None:
    connection.execute(
        audit_events.insert().values(
            id=uuid.uuid4(), occurred_at=now, source="system", actor=ACTOR, **event
        )
    )


def _mapping(row: Any) -> dict[str, Any]:
    return {"group": row.group_name, "key": row.group_name_key, "role": row.role}


def _rekey_collapsed(connection: sa.Connection, mappings: list[Any], now: datetime) -> None:
    """The mappings of one organisation whose names have one key: one mapping under that key,
    the name of the one holding it already (else the first), the highest of their roles."""
    key = name_key(composed(mappings[0].group_name.strip()))
    keeper = next((m for m in mappings if m.group_name_key == key), mappings[0])
    role = max((m.role for m in mappings), key=ROLE_RANK.__getitem__)
    after = {"group": composed(keeper.group_name.strip()), "key": key, "role": role}
    changed = [m for m in mappings if _mapping(m) != after]
    if not changed:
        return
    organisation_id = mappings[0].organisation_id
    connection.execute(
        roles.delete().where(
            roles.c.organisation_id == organisation_id,
            roles.c.group_name_key.in_([m.group_name_key for m in mappings]),
        )
    )
    connection.execute(
        roles.insert().values(
            organisation_id=organisation_id,
            group_name_key=key,
            group_name=after["group"],
            role=role,
        )
    )
    reason = "keyed by its name (0045 left it under a key no lookup computes)"
    if len(mappings) > 1:
        reason += f"; {len(mappings)} mappings of one group, the highest role kept"
    for mapping in changed:
        _audit(
            connection,
            now,
            organisation_id=organisation_id,
            action="scim.group_role.rekeyed",
            target_type="organisation",
            target_id=str(organisation_id),
            before=_mapping(mapping),
            after={**after, "reason": reason},
        )


def _rekey_group_roles(connection: sa.Connection, now: datetime) -> None:
    rows = connection.execute(
        sa.select(roles).order_by(roles.c.organisation_id, roles.c.group_name_key)
    ).all()

    def group_of(row: Any) -> tuple[str, str]:
        return str(row.organisation_id), name_key(composed(row.group_name.strip()))

    for _group, mappings in groupby(sorted(rows, key=group_of), key=group_of):
        _rekey_collapsed(connection, list(mappings), now)


def _last_audited(connection: sa.Connection, actions: tuple[str, ...]) -> dict[Any, Any]:
    """The latest of these audit events per (organisation, target) they are about."""
    events = connection.execute(
        sa.select(
            audit_events.c.organisation_id,
            audit_events.c.target_id,
            audit_events.c.after,
        )
        .where(audit_events.c.action.in_(actions))
        .order_by(audit_events.c.occurred_at, audit_events.c.id)
    ).all()
    return {(str(e.organisation_id), e.target_id): e.after for e in events}


def _composed_by_0045(audited: str, current: str) -> bool:
    return audited != current and composed(audited.strip()) == current


def _audit_team_renames(connection: sa.Connection, now: datetime) -> None:
    last = _last_audited(connection, ("team.created", "team.renamed"))
    untraced = 0
    for team in connection.execute(sa.select(teams).order_by(teams.c.id)).all():
        after = last.get((str(team.organisation_id), str(team.id))) or {}
        audited = after.get("name")
        if audited is None:
            untraced += not team.name.isascii()
        elif _composed_by_0045(audited, team.name):
            _audit(
                connection,
                now,
                organisation_id=team.organisation_id,
                action="team.renamed",
                target_type="team",
                target_id=str(team.id),
                before={"id": str(team.id), "name": audited},
                after={"id": str(team.id), "name": team.name, "reason": BY_0045},
            )
    if untraced:
        log.warning(
            "%d team(s) with a non-ASCII name have no audited name: whether 0045 composed "
            "their name cannot be told",
            untraced,
        )


def _audited_group_names(connection: sa.Connection) -> dict[tuple[str, str], str]:
    """The name each mapping was last set with, by (organisation, its key then: lower case)."""
    events = connection.execute(
        sa.select(audit_events.c.organisation_id, audit_events.c.after)
        .where(audit_events.c.action == "scim.group_role.set")
        .order_by(audit_events.c.occurred_at, audit_events.c.id)
    ).all()
    return {
        (str(e.organisation_id), e.after["group"].strip().lower()): e.after["group"].strip()
        for e in events
        if e.after and e.after.get("group")
    }


def _name_before_0045(
    audited: dict[tuple[str, str], str], keys: set[tuple[str, str]], row: Any
) -> str | None:
    """The audited name of this mapping when 0045 changed it (its name or its key), else None."""
    organisation_id = str(row.organisation_id)
    same_key = audited.get((organisation_id, row.group_name_key))
    if same_key is not None:
        return same_key if same_key != row.group_name else None
    moved = (
        name
        for (org, old_key), name in audited.items()
        if org == organisation_id
        and (org, old_key) not in keys
        and composed(name) == row.group_name
    )
    return next(moved, None)


def _audit_group_role_rekeys(connection: sa.Connection, now: datetime) -> None:
    audited = _audited_group_names(connection)
    rows = connection.execute(sa.select(roles)).all()
    keys = {(str(row.organisation_id), row.group_name_key) for row in rows}
    for row in rows:
        name = _name_before_0045(audited, keys, row)
        if name is not None:
            _audit(
                connection,
                now,
                organisation_id=row.organisation_id,
                action="scim.group_role.rekeyed",
                target_type="organisation",
                target_id=str(row.organisation_id),
                before={"group": name, "key": name.lower(), "role": row.role},
                after={**_mapping(row), "reason": BY_0045},
            )


def upgrade() -> None:
    connection = op.get_bind()
    now = datetime.now(UTC)
    _audit_team_renames(connection, now)
    _audit_group_role_rekeys(connection, now)
    _rekey_group_roles(connection, now)


def downgrade() -> None:
    """Nothing to undo: a mapping under a key no lookup computes granted nothing, and the
    audit trail has each mapping as it was."""
