"""Migration 0048_group_role_keys: SCIM group-role mappings that 0045 left under a key no lookup
computes (a decomposed twin of a composed mapping; a Greek name whose key 0045 took from the
old key, lower case first) reach their group again, and 0045's silent changes are audited where
the audit trail shows the name they replaced.

Before, such a mapping granted its group's members nothing, and an admin could not remove it by
its name either: its key was neither the group's nor the name's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.orm import Session

from models.actions import scim as scim_actions
from models.entities import (
    AuditEvent,
    Organisation,
    ScimGroupRole,
    Team,
    TeamMembership,
    User,
)
from models.enums import Role, Source, TeamRole, UserStatus
from models.migrate import upgrade
from tests.support.migration_db import own_database

BEFORE_0045 = "0044_invitation_retry_at"
# "Ϊ́ris": lower case then composed is "ΐ" (U+0390), composed then lower case is not.
GREEK = "\u03aa\u0301ris"
EQUIPE, EQUIPE_DECOMPOSED = "\u00c9quipe", "E\u0301quipe"
ROOM_DECOMPOSED, UNTRACED_DECOMPOSED = "The\u0301 Room", "Ze\u0301ta"


@pytest.fixture
def blank_engine(tmp_path: Path) -> Iterator[Engine]:
    yield from own_database(tmp_path)


def _audited(connection: Connection, org: uuid.UUID, when: datetime, **event: object) -> None:
    connection.execute(
        insert(AuditEvent.__table__).values(
            id=uuid.uuid4(), organisation_id=org, occurred_at=when, source="admin",
            actor="admin:someone", **event,
        )
    )  # fmt: skip


def _team(connection: Connection, org: uuid.UUID, name: str, when: datetime) -> uuid.UUID:
    """A SCIM team as the old rule keyed it (name.lower()), its creation audited."""
    team_id = uuid.uuid4()
    connection.execute(
        insert(Team.__table__).values(
            id=team_id, organisation_id=org, name=name, name_key=name.lower(),
            external_source=Source.SCIM, external_id=str(uuid.uuid4()),
            created_at=when, updated_at=when,
        )
    )  # fmt: skip
    _audited(
        connection, org, when, action="team.created", target_type="team",
        target_id=str(team_id), before=None, after={"id": str(team_id), "name": name},
    )  # fmt: skip
    return team_id


def _mapping(connection: Connection, org: uuid.UUID, name: str, role: Role, when: datetime):
    """A group-role mapping as set_group_role wrote it before 0045, audited."""
    connection.execute(
        insert(ScimGroupRole.__table__).values(
            organisation_id=org, group_name_key=name.lower(), group_name=name, role=role
        )
    )
    _audited(
        connection, org, when, action="scim.group_role.set", target_type="organisation",
        target_id=str(org), before=None, after={"group": name, "role": role.value},
    )  # fmt: skip


def seed(engine: Engine) -> tuple[uuid.UUID, dict[str, uuid.UUID], dict[str, uuid.UUID]]:
    now = datetime.now(UTC) - timedelta(days=10)
    org = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            insert(Organisation.__table__).values(
                id=org, name="Org", slug="org", created_at=now, updated_at=now
            )
        )
        teams = {
            "greek": _team(connection, org, GREEK, now),
            "equipe": _team(connection, org, EQUIPE, now),
            "room": _team(connection, org, ROOM_DECOMPOSED, now),
        }
        untraced = uuid.uuid4()  # made before audit events were kept: no trail
        connection.execute(
            insert(Team.__table__).values(
                id=untraced, organisation_id=org, name=UNTRACED_DECOMPOSED,
                name_key=UNTRACED_DECOMPOSED.lower(), created_at=now, updated_at=now,
            )
        )  # fmt: skip
        teams["untraced"] = untraced
        people = {label: uuid.uuid4() for label in ("ann", "bob")}
        for label, person in people.items():
            connection.execute(
                insert(User.__table__).values(
                    id=person, organisation_id=org, name=label, email=f"{label}@example.com",
                    email_key=f"{label}@example.com", role=Role.USER, status=UserStatus.ACTIVE,
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
        for team, person in (("greek", "ann"), ("equipe", "bob")):
            connection.execute(
                insert(TeamMembership.__table__).values(
                    team_id=teams[team], user_id=people[person], role=TeamRole.MEMBER,
                    source=Source.SCIM, created_at=now,
                )
            )  # fmt: skip
        _mapping(connection, org, GREEK, Role.MANAGER, now)
        _mapping(connection, org, EQUIPE, Role.MANAGER, now + timedelta(seconds=1))
        # The same group typed decomposed (macOS), mapped higher.
        _mapping(connection, org, EQUIPE_DECOMPOSED, Role.ORG_ADMIN, now + timedelta(seconds=2))
    return org, teams, people


def test_mappings_0045_left_dead_reach_their_group_again(blank_engine: Engine) -> None:
    upgrade(blank_engine, BEFORE_0045)
    org, teams, people = seed(blank_engine)

    upgrade(blank_engine, "head")

    with Session(blank_engine) as session:
        granted = scim_actions._mapped_roles(session, org, list(people.values()))
        mappings = {
            (m.group_name_key, m.group_name, m.role) for m in session.scalars(select(ScimGroupRole))
        }
        team_keys = {session.get_one(Team, teams[label]).name_key for label in ("greek", "equipe")}
    assert granted == {people["ann"]: Role.MANAGER, people["bob"]: Role.ORG_ADMIN}
    assert {key for key, _name, _role in mappings} == team_keys
    assert (
        "\u00e9quipe",
        EQUIPE,
        Role.ORG_ADMIN,
    ) in mappings  # one mapping of the group, its higher role


def test_what_0045_and_0048_changed_is_audited(blank_engine: Engine) -> None:
    upgrade(blank_engine, BEFORE_0045)
    org, teams, _people = seed(blank_engine)

    upgrade(blank_engine, "head")

    with Session(blank_engine) as session:
        events = list(
            session.scalars(select(AuditEvent).where(AuditEvent.actor == "system:migration 0048"))
        )
    renamed = {
        (e.target_id, e.before["name"], e.after["name"])
        for e in events
        if e.action == "team.renamed"
    }
    assert renamed == {(str(teams["room"]), ROOM_DECOMPOSED, "Th\u00e9 Room")}  # untraced: none
    rekeyed = sorted(
        (e.before["group"], e.before["key"], e.after["key"], e.after["role"])
        for e in events
        if e.action == "scim.group_role.rekeyed"
    )
    greek_0045_key = "\u0390ris"  # what 0045 made of the old key
    assert rekeyed == sorted(
        [
            (GREEK, GREEK.lower(), greek_0045_key, "MANAGER"),  # 0045, retro
            (GREEK, greek_0045_key, "\u03ca\u0301ris", "MANAGER"),  # 0048
            (EQUIPE, "\u00e9quipe", "\u00e9quipe", "ORG_ADMIN"),  # its role raised
            (EQUIPE_DECOMPOSED, "e\u0301quipe", "\u00e9quipe", "ORG_ADMIN"),  # merged
        ]
    )
    assert all(e.organisation_id == org and e.source == "system" for e in events)
