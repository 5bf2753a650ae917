"""A membership changed by a request while the team is being deleted, over real HTTP: as if
the deletion came first (models.membership_locks.lock_membership). The deletion holds the team;
the request waits for it, then finds the team gone: 404, nothing written.

Before, an added member's row failed its foreign key once the deletion committed and the
retry read found no membership: a 500; a removal answered 204 for a team already gone."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from models.actions import teams as team_actions
from models.actor import Actor
from models.db import SessionFactory
from models.entities import AuditEvent, Team, TeamMembership, User
from models.enums import Source, UserStatus
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


def deleted_once_read(
    sessions: SessionFactory, team: uuid.UUID, read: type[Any], key: Callable[[Any], bool]
) -> Callable[[Any, Any], None]:
    """A handler of the ORM's `load` of `read`: the first time a row `key` accepts is loaded,
    the team's deletion runs in a transaction of its own and commits, before the reader goes on
    (between the route's read and its next one, where a delete can commit on PostgreSQL)."""
    done: list[bool] = []

    def on_load(row: Any, _context: Any) -> None:
        if done or not key(row):
            return
        done.append(True)
        with sessions() as own:
            deleting(team)(own)
            own.commit()

    return on_load


@pytest.mark.parametrize(
    ("who", "team_of", "method", "user", "body", "read"),
    [
        ("admin", "beta", "PUT", "newcomer", {"role": "MEMBER"}, Team),
        ("admin", "beta", "PUT", "revoked", {"role": "MEMBER"}, Team),
        ("admin", "beta", "DELETE", "outsider", None, Team),
        ("manager", "alpha", "PUT", "colleague", {"role": "MEMBER"}, TeamMembership),
        ("manager", "alpha", "DELETE", "colleague", None, TeamMembership),
    ],
)
def test_a_team_deleted_between_the_reads_of_a_member_change_is_not_found_not_forbidden(
    engine: Engine,
    sessions: SessionFactory,
    world: World,
    live_server: str,
    app: Flask,
    who: str,
    team_of: str,
    method: str,
    user: str,
    body: Any,
    read: type[Any],
) -> None:
    """The deletion commits once the request has read the team (an admin's) or its manager's
    own membership of it (a manager's), before the request decides who may change the team:
    a 404, as if the deletion came first. It was a 403: the check read the organisation's
    teams (or the manager's teams) again and no longer found the one the request had read; and
    the add of a REVOKED person was refused for the deleted team (a 409 and its audit event)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one transaction at a time: no deletion commits mid-request")
    if user == "revoked":
        user = "newcomer"
        with sessions() as own:
            own.get_one(User, world.users[user]).status = UserStatus.REVOKED
            own.commit()
    team = getattr(world, team_of)
    viewer = world.users[who]
    key = (
        (lambda row: row.id == team)
        if read is Team
        else (lambda row: row.team_id == team and row.user_id == viewer)
    )
    handler = deleted_once_read(sessions, team, read, key)
    url = f"{live_server}/api/v1/teams/{team}/members/{world.users[user]}"
    event.listen(read, "load", handler)
    try:
        answer = requests.request(method, url, json=body, headers=world.auth(who), timeout=60)
    finally:
        event.remove(read, "load", handler)

    assert answer.status_code == 404, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    with sessions() as fresh:
        assert fresh.get(Team, team) is None
        actions = fresh.scalars(
            select(AuditEvent.action).where(AuditEvent.target_id == str(team))
        ).all()
    assert "team.deleted" in actions
    assert not {"team.member_removed", "team.member_role_changed"} & set(actions), actions
    with sessions() as fresh:
        refused = fresh.scalars(
            select(AuditEvent.id).where(AuditEvent.action == "user.team_membership_refused")
        ).all()
    assert refused == []


def test_a_managers_invitation_to_a_team_deleted_while_it_is_checked_comes_before_it(
    engine: Engine, sessions: SessionFactory, world: World, live_server: str, app: Flask
) -> None:
    """The deletion commits once the invitation has read the team it names: the invitation saw
    the team and the manager's teams before it, so it comes first, as serially (201; its
    acceptance records a team gone by then as missing). It was a 403 ("you do not manage
    team"), which no serial order gives: the manager's teams were read after the team."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one transaction at a time: no deletion commits mid-request")
    team = world.alpha
    handler = deleted_once_read(sessions, team, Team, lambda row: row.id == team)
    body = {"email": "invited@acme.test", "teams": [{"team_id": str(team)}]}
    event.listen(Team, "load", handler)
    try:
        answer = requests.post(
            f"{live_server}/api/v1/invitations",
            json=body,
            headers=world.auth("manager"),
            timeout=60,
        )
    finally:
        event.remove(Team, "load", handler)

    assert answer.status_code == 201, answer.text
    assert answer.json()["teams"] == [{"team_id": str(team), "role": "MEMBER"}]
    with sessions() as fresh:
        assert fresh.get(Team, team) is None
