"""A team renamed by two requests at once, over real HTTP (models.actions.teams.rename_team):
as if one came after the other. An admin's rename holds the team (or the name it takes), and
the request arriving meanwhile waits for it and then decides on what it wrote.

Before, the rename read the team unlocked: the later request audited the name it had read
(two events from 'Beta', the trail no longer telling the order), a rename to the name the
team just got was audited a second time, and a second team renamed to the name taken meanwhile
was PostgreSQL's unique violation: a 500."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import requests
from flask import Flask
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from models.actions import teams as team_actions
from models.actor import Actor
from models.db import SessionFactory
from models.entities import AuditEvent, Team
from models.enums import Source
from tests.admin_api.conftest import World
from tests.scim.conftest import live_server as _live_server
from tests.support.parallel import while_held

live_server = _live_server
ADMIN = Actor(Source.ADMIN, "admin:ann@example.com")


def rename(
    live_server: str, world: World, team: uuid.UUID, name: str
) -> Callable[[], requests.Response]:
    url = f"{live_server}/api/v1/teams/{team}"
    return lambda: requests.patch(url, json={"name": name}, headers=world.auth("admin"), timeout=60)


def renamed_by_admin(team: uuid.UUID, name: str) -> Callable[[Session], None]:
    def hold(own: Session) -> None:
        team_actions.rename_team(own, team=own.get_one(Team, team), name=name, actor=ADMIN)
        own.flush()

    return hold


def renames(sessions: SessionFactory, *teams: uuid.UUID) -> list[tuple[str, str]]:
    with sessions() as fresh:
        trail = fresh.scalars(
            select(AuditEvent)
            .where(AuditEvent.target_id.in_([str(team) for team in teams]))
            .where(AuditEvent.action == "team.renamed")
            .order_by(AuditEvent.occurred_at)
        )
        return [(event.before["name"], event.after["name"]) for event in trail]


def test_a_team_renamed_while_renamed_chains_the_trail(
    engine: Engine, sessions: SessionFactory, world: World, live_server: str, app: Flask
) -> None:
    (answer,) = while_held(
        engine,
        renamed_by_admin(world.beta, "Delta"),
        [rename(live_server, world, world.beta, "Epsilon")],
    )
    assert answer.status_code == 200, answer.text
    assert renames(sessions, world.beta) == [("Beta", "Delta"), ("Delta", "Epsilon")]
    with sessions() as fresh:
        assert fresh.get_one(Team, world.beta).name == "Epsilon"


def test_a_team_renamed_to_the_name_it_just_got_is_renamed_once(
    engine: Engine, sessions: SessionFactory, world: World, live_server: str, app: Flask
) -> None:
    answers = while_held(
        engine,
        renamed_by_admin(world.beta, "Delta"),
        [rename(live_server, world, world.beta, "Delta")] * 2,
    )
    assert [answer.status_code for answer in answers] == [200, 200], [a.text for a in answers]
    assert renames(sessions, world.beta) == [("Beta", "Delta")]


def test_a_team_renamed_to_a_name_another_takes_meanwhile_is_a_409(
    engine: Engine, sessions: SessionFactory, world: World, live_server: str, app: Flask
) -> None:
    (answer,) = while_held(
        engine,
        renamed_by_admin(world.alpha, "Delta"),
        [rename(live_server, world, world.beta, "delta")],
    )
    assert answer.status_code == 409, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert "already exists" in answer.json()["detail"]
    assert renames(sessions, world.alpha, world.beta) == [("Alpha", "Delta")]
    with sessions() as fresh:
        assert fresh.get_one(Team, world.beta).name == "Beta"
