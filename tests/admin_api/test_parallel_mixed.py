"""Many different changes of one person, or of one team, at once over real HTTP: every answer
is one a serial order could give (no 5xx), and the audit trail chains as a serial order's
would (each change's `before` is the previous change's `after`, ending at the final state)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from models.db import SessionFactory
from models.entities import AuditEvent, Team, TeamMembership, User
from tests.admin_api.conftest import World
from tests.admin_api.test_parallel import Caller
from tests.scim.conftest import live_server as _live_server
from tests.support.parallel import in_parallel

live_server = _live_server
SERIAL_ANSWERS = {200, 201, 204, 404, 409}


@pytest.fixture
def admin(live_server: str, world: World) -> Iterator[Any]:
    yield Caller(live_server, world.auth("admin"))


def trail(sessions: SessionFactory, target: str) -> list[AuditEvent]:
    with sessions() as fresh:
        return list(fresh.scalars(select(AuditEvent).where(AuditEvent.target_id == target)))


def chains(changes: list[tuple[Any, Any]], start: Any, end: Any) -> bool:
    """Whether the (before, after) pairs can be put in one order going from start to end."""
    if not changes:
        return start == end
    return any(
        before == start and chains(changes[:i] + changes[i + 1 :], after, end)
        for i, (before, after) in enumerate(changes)
    )


def field_changes(events: list[AuditEvent], name: str) -> list[tuple[Any, Any]]:
    return [
        (event.before[name], event.after[name])
        for event in events
        if event.before and event.after and name in event.before and name in event.after
        if event.before[name] != event.after[name]
    ]


def membership_changes(events: list[AuditEvent], user: str) -> list[tuple[Any, Any]]:
    """The (role before, role after) of the person's membership in each team event about it."""

    def role(side: dict[str, Any] | None) -> Any:
        return side.get("role") if side else None

    return [
        (role(event.before), role(event.after))
        for event in events
        if event.action.startswith("team.member")
        and user in {(side or {}).get("user_id") for side in (event.before, event.after)}
    ]


def test_role_status_name_and_teams_of_one_person_at_once_compose_as_if_serial(
    admin: Caller, world: World, sessions: SessionFactory, app: Flask
) -> None:
    user, alpha, beta = world.users["colleague"], world.alpha, world.beta
    with sessions() as fresh:
        name_before = fresh.get_one(User, user).name
    calls = [
        admin("PATCH", f"/users/{user}", {"role": "MANAGER"}),
        admin("PATCH", f"/users/{user}", {"role": "ORG_ADMIN"}),
        admin("PATCH", f"/users/{user}", {"name": "Renamed Once"}),
        admin("PATCH", f"/users/{user}", {"name": "Renamed Twice"}),
        admin("POST", f"/users/{user}/revoke", {"reason": "left"}),
        admin("PATCH", f"/users/{user}", {"status": "REVOKED"}),
        admin("POST", f"/users/{user}/reactivate"),
        admin("PUT", f"/teams/{beta}/members/{user}", {"role": "MEMBER"}),
        admin("PUT", f"/teams/{beta}/members/{user}", {"role": "MANAGER"}),
        admin("DELETE", f"/teams/{alpha}/members/{user}"),
        admin("PUT", f"/teams/{alpha}/members/{user}", {"role": "MANAGER"}),
        admin("PUT", f"/users/{user}/access-end", {"access_ends_at": "2030-01-01T00:00:00Z"}),
    ]
    answers = in_parallel(calls)

    assert {r.status_code for r in answers} <= SERIAL_ANSWERS, [r.text for r in answers]
    events = trail(sessions, str(user))
    with sessions() as fresh:
        person = fresh.get_one(User, user)
        memberships = {
            m.team_id: m.role
            for m in fresh.scalars(select(TeamMembership).where(TeamMembership.user_id == user))
        }
    assert chains(field_changes(events, "role"), "USER", person.role.value), events
    assert chains(field_changes(events, "name"), name_before, person.name), events
    statuses = [e.action for e in events if e.action in {"user.revoked", "user.reactivated"}]
    assert statuses.count("user.revoked") - statuses.count("user.reactivated") == (
        1 if person.status.value == "REVOKED" else 0
    ), statuses
    for team in (alpha, beta):  # from before the setup added the person to Alpha
        changes = membership_changes(trail(sessions, str(team)), str(user))
        final = memberships[team].value if team in memberships else None
        assert chains(changes, None, final), (team, changes, final)


def test_rename_members_and_delete_of_one_team_at_once_compose_as_if_serial(
    admin: Caller, world: World, sessions: SessionFactory, app: Flask
) -> None:
    team, users = world.beta, world.users
    calls = [
        admin("PATCH", f"/teams/{team}", {"name": "Beta Renamed"}),
        admin("PATCH", f"/teams/{team}", {"name": "Beta Again"}),
        admin("PUT", f"/teams/{team}/members/{users['colleague']}", {"role": "MEMBER"}),
        admin("PUT", f"/teams/{team}/members/{users['newcomer']}", {"role": "MANAGER"}),
        admin("PUT", f"/teams/{team}/members/{users['newcomer']}", {"role": "MEMBER"}),
        admin("DELETE", f"/teams/{team}/members/{users['outsider']}"),
        admin("DELETE", f"/teams/{team}"),
        admin("DELETE", f"/teams/{team}"),
        admin("GET", f"/teams/{team}/members"),
        admin("POST", "/teams", {"name": "Beta Renamed"}),
    ]
    answers = in_parallel(calls)

    assert {r.status_code for r in answers} <= SERIAL_ANSWERS, [r.text for r in answers]
    events = trail(sessions, str(team))
    assert [e.action for e in events].count("team.deleted") == 1
    with sessions() as fresh:
        assert fresh.get(Team, team) is None
        left = fresh.scalars(select(TeamMembership).where(TeamMembership.team_id == team)).all()
    assert not left
