"""Migration 0047_team_name_twins: teams of one organisation whose names differ only by Unicode
normalisation, made before 0045 (which keys names composed and leaves such a twin with its old
key), each end with a name of their own and the key of that name: the team holding the composed
key keeps it, the other is renamed "<name> (n)" with its members untouched, audited; and the
one rule (connectors.name_keys) finds each team by its name, as every runtime path asks.

Before, the twin kept its decomposed name and a key no lookup computes: "Équipe" found the
composed team only, and an LDAP run read the twin's members under that key and planned their
removal from the team its name finds (the composed one)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from connectors.name_keys import composed, name_key
from models.actions import teams as team_actions
from models.actor import Actor
from models.entities import AuditEvent, Organisation, Team, TeamMembership, User
from models.enums import Role, Source, TeamRole, UserStatus
from models.errors import Conflict
from models.migrate import upgrade
from tests.support.migration_db import own_database

BEFORE_0045 = "0044_invitation_retry_at"
COMPOSED, DECOMPOSED = "\u00c9quipe", "E\u0301quipe"
CAFE, CAFE_DECOMPOSED = "Caf\u00e9", "Cafe\u0301"


@pytest.fixture
def blank_engine(tmp_path: Path) -> Iterator[Engine]:
    yield from own_database(tmp_path)


def seed(engine: Engine) -> tuple[list[uuid.UUID], dict[str, uuid.UUID], dict[str, uuid.UUID]]:
    """Two organisations, their teams as the old rule keyed them (name.lower()), and
    memberships in both twins; the teams' and people's ids by label."""
    now = datetime.now(UTC)
    orgs = [uuid.uuid4(), uuid.uuid4()]
    names = {  # label: (organisation, name, made by a directory), oldest first
        "older_cafe_twin": (orgs[0], CAFE_DECOMPOSED, False),
        "composed": (orgs[0], COMPOSED, False),
        "twin": (orgs[0], DECOMPOSED, True),
        "numbered": (orgs[0], f"{COMPOSED} (2)", False),
        "cafe": (orgs[0], CAFE, False),
        "alone": (orgs[0], "The\u0301 Room", False),
        "elsewhere": (orgs[1], DECOMPOSED, False),
    }
    teams = {label: uuid.uuid4() for label in names}
    people = {label: uuid.uuid4() for label in ("ann", "bob")}
    with engine.begin() as connection:
        for n, org in enumerate(orgs):
            connection.execute(
                insert(Organisation.__table__).values(
                    id=org, name=f"Org {n}", slug=f"org-{n}", created_at=now, updated_at=now
                )
            )
        for n, (label, (org, name, directory)) in enumerate(names.items()):
            made = now - timedelta(days=10) + timedelta(seconds=n)
            connection.execute(
                insert(Team.__table__).values(
                    id=teams[label], organisation_id=org, name=name, name_key=name.lower(),
                    external_source=Source.LDAP if directory else None,
                    external_id="cn=equipe" if directory else None,
                    created_at=made, updated_at=made,
                )
            )  # fmt: skip
        for label, person in people.items():
            connection.execute(
                insert(User.__table__).values(
                    id=person, organisation_id=orgs[0], name=label, email=f"{label}@example.com",
                    email_key=f"{label}@example.com", role=Role.USER, status=UserStatus.ACTIVE,
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
        for team, person, role, source in (
            ("composed", "ann", TeamRole.MANAGER, Source.ADMIN),
            ("twin", "ann", TeamRole.MEMBER, Source.LDAP),
            ("twin", "bob", TeamRole.MANAGER, Source.LDAP),
            ("older_cafe_twin", "bob", TeamRole.MEMBER, Source.SCIM),
        ):
            connection.execute(
                insert(TeamMembership.__table__).values(
                    team_id=teams[team], user_id=people[person], role=role, source=source,
                    created_at=now,
                )
            )  # fmt: skip
    return orgs, teams, people


def memberships(engine: Engine) -> set[tuple]:
    with engine.connect() as connection:
        return {
            tuple(row)
            for row in connection.execute(
                select(
                    TeamMembership.team_id,
                    TeamMembership.user_id,
                    TeamMembership.role,
                    TeamMembership.source,
                )
            )
        }


def test_twins_get_names_of_their_own_and_keep_their_members(blank_engine: Engine) -> None:
    upgrade(blank_engine, BEFORE_0045)
    orgs, ids, _ = seed(blank_engine)
    members_before = memberships(blank_engine)

    upgrade(blank_engine, "head")

    with Session(blank_engine) as session:
        teams = {team.id: team for team in session.scalars(select(Team))}
        renamed = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "team.renamed").order_by(AuditEvent.id)
        ).all()
        named = {
            spelling: team_actions.find_team_by_name(session, orgs[0], spelling)
            for spelling in (DECOMPOSED, COMPOSED.upper(), f"{COMPOSED} (3)", CAFE_DECOMPOSED)
        }
        with pytest.raises(Conflict):
            team_actions.create_team(
                session,
                organisation=session.get_one(Organisation, orgs[0]),
                name=DECOMPOSED,
                actor=Actor(Source.ADMIN, "admin"),
            )

    names = {label: (teams[ids[label]].name, teams[ids[label]].name_key) for label in ids}
    assert names == {
        "older_cafe_twin": (f"{CAFE} (2)", "caf\u00e9 (2)"),  # the composed key was taken
        "composed": (COMPOSED, "\u00e9quipe"),
        "twin": (f"{COMPOSED} (3)", "\u00e9quipe (3)"),  # "(2)" was taken too
        "numbered": (f"{COMPOSED} (2)", "\u00e9quipe (2)"),
        "cafe": (CAFE, "caf\u00e9"),
        "alone": ("Th\u00e9 Room", "th\u00e9 room"),
        "elsewhere": (COMPOSED, "\u00e9quipe"),
    }
    for team in teams.values():
        assert (team.name, team.name_key) == (composed(team.name), name_key(team.name))
    assert teams[ids["twin"]].external_source is None  # no group maps to its new name
    assert memberships(blank_engine) == members_before

    assert {named[spelling].id for spelling in (DECOMPOSED, COMPOSED.upper())} == {ids["composed"]}
    assert named[f"{COMPOSED} (3)"].id == ids["twin"]
    assert named[CAFE_DECOMPOSED].id == ids["cafe"]

    by_team = {event.target_id: event for event in renamed}
    assert set(by_team) == {str(ids["twin"]), str(ids["older_cafe_twin"])}
    twin = by_team[str(ids["twin"])]
    assert (twin.source, twin.actor, twin.organisation_id) == (
        Source.SYSTEM,
        "system:migration 0047",
        orgs[0],
    )
    assert twin.before == {
        "name": DECOMPOSED,
        "name_key": DECOMPOSED.lower(),
        "external_source": "ldap",
    }
    assert twin.after is not None
    assert (twin.after["name"], twin.after["external_source"]) == (f"{COMPOSED} (3)", None)
