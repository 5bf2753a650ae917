"""Migration 0049_scim_twin_links: a SCIM group that 0047 renamed as a Unicode-normalisation
twin is the IdP's group again, audited; an LDAP twin stays unlinked (0047's reason holds).

Before, 0047 had cleared the SCIM twin's external_source: the IdP's next push of that group by
its id (PATCH or PUT /Groups/{id}) answered 404 and its members stayed as 0047 found them (a
person taken out of the group kept the team, one put in never joined)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.orm import Session

from connectors.scim.fields import ScimGroupFields
from models.actions import scim as scim_actions
from models.actor import Actor
from models.entities import AuditEvent, Organisation, ScimUser, Team, TeamMembership, User
from models.enums import Role, Source, TeamRole, UserStatus
from models.errors import Conflict
from models.migrate import upgrade
from tests.support.migration_db import own_database

BEFORE_0045 = "0044_invitation_retry_at"
COMPOSED, DECOMPOSED = "\u00c9quipe", "E\u0301quipe"
IDP = Actor(Source.SCIM, "scim:okta")


@pytest.fixture
def blank_engine(tmp_path: Path) -> Iterator[Engine]:
    yield from own_database(tmp_path)


def _team(connection: Connection, org: uuid.UUID, name: str, source: Source | None, n: int):
    team_id, made = uuid.uuid4(), datetime.now(UTC) - timedelta(days=10, seconds=-n)
    connection.execute(
        insert(Team.__table__).values(
            id=team_id, organisation_id=org, name=name, name_key=name.lower(),
            external_source=source, external_id=f"group-{n}" if source else None,
            created_at=made, updated_at=made,
        )
    )  # fmt: skip
    return team_id


def _scim_person(connection: Connection, org: uuid.UUID, label: str) -> tuple[uuid.UUID, ...]:
    now, user_id, scim_id = datetime.now(UTC), uuid.uuid4(), uuid.uuid4()
    connection.execute(
        insert(User.__table__).values(
            id=user_id, organisation_id=org, name=label, email=f"{label}@example.com",
            email_key=f"{label}@example.com", role=Role.USER, status=UserStatus.ACTIVE,
            created_at=now, updated_at=now,
        )
    )  # fmt: skip
    connection.execute(
        insert(ScimUser.__table__).values(
            id=scim_id, organisation_id=org, user_id=user_id, user_name=label,
            user_name_key=label, extra={}, created_at=now, updated_at=now,
        )
    )  # fmt: skip
    return user_id, scim_id


def seed(engine: Engine) -> dict[str, uuid.UUID]:
    """A composed team, its SCIM-made and LDAP-made twins (old keys), ann in the SCIM twin."""
    org, now = uuid.uuid4(), datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(Organisation.__table__).values(
                id=org, name="Org", slug="org", created_at=now, updated_at=now
            )
        )
        ids = {
            "org": org,
            "composed": _team(connection, org, COMPOSED, None, 0),
            "scim_twin": _team(connection, org, DECOMPOSED, Source.SCIM, 1),
            "cafe": _team(connection, org, "Caf\u00e9", None, 2),
            "ldap_twin": _team(connection, org, "Cafe\u0301", Source.LDAP, 3),
        }
        ids["ann"], ids["ann_scim"] = _scim_person(connection, org, "ann")
        ids["bob"], ids["bob_scim"] = _scim_person(connection, org, "bob")
        connection.execute(
            insert(TeamMembership.__table__).values(
                team_id=ids["scim_twin"], user_id=ids["ann"], role=TeamRole.MEMBER,
                source=Source.SCIM, created_at=now,
            )
        )  # fmt: skip
    return ids


def members(session: Session, team_id: uuid.UUID) -> set[uuid.UUID]:
    return set(
        session.scalars(select(TeamMembership.user_id).where(TeamMembership.team_id == team_id))
    )


def test_the_idp_reaches_its_renamed_group_again_and_sets_its_members(
    blank_engine: Engine,
) -> None:
    upgrade(blank_engine, BEFORE_0045)
    ids = seed(blank_engine)

    upgrade(blank_engine, "head")

    with Session(blank_engine) as session:
        org = ids["org"]
        twin = scim_actions.get_scim_group(session, org, str(ids["scim_twin"]), for_update=True)
        assert (twin.name, twin.external_source, twin.external_id) == (
            f"{COMPOSED} (2)", Source.SCIM, "group-1",
        )  # fmt: skip
        # The IdP's push of the group (PUT with the name it now has): ann leaves, bob joins.
        scim_actions.replace_scim_group(
            session,
            team=twin,
            fields=ScimGroupFields(twin.name, "group-1", (str(ids["bob_scim"]),)),
            actor=IDP,
        )
        session.commit()
        assert members(session, ids["scim_twin"]) == {ids["bob"]}
        # A push still naming the group as the IdP spelled it (decomposed) is the composed
        # team's name: refused, as two groups may not share one name.
        with pytest.raises(Conflict):
            scim_actions.replace_scim_group(
                session, team=twin, fields=ScimGroupFields(DECOMPOSED, "group-1"), actor=IDP
            )
        session.rollback()
        assert session.get_one(Team, ids["ldap_twin"]).external_source is None
        restored = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "team.source_restored")
        ).all()

    assert [(e.target_id, e.actor, e.organisation_id) for e in restored] == [
        (str(ids["scim_twin"]), "system:migration 0049", ids["org"])
    ]
    assert restored[0].before == {
        "id": str(ids["scim_twin"]), "name": f"{COMPOSED} (2)", "external_source": None,
    }  # fmt: skip
    assert restored[0].after is not None
    assert restored[0].after["external_source"] == "scim"
