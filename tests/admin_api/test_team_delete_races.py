"""A membership changed by a request while the team is being deleted, over real HTTP: as if
the deletion came first (models.membership_locks.lock_membership). The deletion holds the team;
the request waits for it, then finds the team gone: 404, nothing written.

Before, an added member's row failed its foreign key once the deletion committed and the
retry read found no membership: a 500; a removal answered 204 for a team already gone."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import requests
from flask import Flask
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from models.actions import teams as team_actions
from models.actor import Actor
from models.db import SessionFactory
from models.entities import AuditEvent, Team, User
from models.enums import Source
from tests.admin_api.conftest import World
from tests.scim.conftest import live_server as _live_server
from tests.support.parallel import while_held

live_server = _live_server
ADMIN = Actor(Source.ADMIN, "admin:ann@example.com")


def deleting(team: uuid.UUID) -> Callable[[Session], None]:
    def hold(own: Session) -> None:
        team_actions.delete_team(own, team=own.get_one(Team, team), actor=ADMIN)
        own.flush()

    return hold


def membership(
    live_server: str, world: World, method: str, user: str, body: Any = None
) -> Callable[[], requests.Response]:
    url = f"{live_server}/api/v1/teams/{world.beta}/members/{world.users[user]}"
    headers = world.auth("admin")
    return lambda: requests.request(method, url, json=body, headers=headers, timeout=60)


def test_a_member_added_or_removed_while_the_team_is_deleted_is_not_found(
    engine: Engine, sessions: SessionFactory, world: World, live_server: str, app: Flask
) -> None:
    answers = while_held(
        engine,
        deleting(world.beta),
        [
            membership(live_server, world, "PUT", "newcomer", {"role": "MANAGER"}),
            membership(live_server, world, "DELETE", "outsider"),
        ],
    )
    for answer in answers:
        assert answer.status_code == 404, answer.text
        assert answer.headers["Content-Type"] == "application/problem+json"
    with sessions() as fresh:
        trail = fresh.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.target_id == str(world.beta))
            .where(AuditEvent.action.in_(["team.member_added", "team.member_removed"]))
        ).all()
        assert fresh.get(Team, world.beta) is None
    assert trail == ["team.member_added"]  # the outsider's, when the world was built


def removing(team: uuid.UUID, user: uuid.UUID) -> Callable[[Session], None]:
    def hold(own: Session) -> None:
        found = own.get_one(Team, team)
        member = own.get_one(User, user)
        assert team_actions.remove_from_team(own, team=found, user=member, actor=ADMIN)
        own.flush()

    return hold


def test_a_member_removed_while_another_removal_commits_is_not_found(
    engine: Engine, sessions: SessionFactory, world: World, live_server: str, app: Flask
) -> None:
    """The DELETE finds the membership, then waits for its lock while another removal holds
    it; once that commits there is nothing left to remove: 404, as a DELETE of a membership
    that is gone answers when it comes later, and no second `team.member_removed`. It was a
    204 (the locked read again found nothing, and the route did not ask)."""
    (answer,) = while_held(
        engine,
        removing(world.beta, world.users["outsider"]),
        [membership(live_server, world, "DELETE", "outsider")],
    )
    assert answer.status_code == 404, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    with sessions() as fresh:
        removed = fresh.scalars(
            select(AuditEvent.id)
            .where(AuditEvent.target_id == str(world.beta))
            .where(AuditEvent.action == "team.member_removed")
        ).all()
    assert len(removed) == 1
