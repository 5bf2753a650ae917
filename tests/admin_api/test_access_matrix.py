"""Role-based access as a table: each role x each endpoint x own team / other team / other org.

The caller is an Organisation Admin, a Manager (team role MANAGER of Alpha) or a User (a
MEMBER of Alpha), all of organisation A. Targets: a person or team of the caller's own team
(Alpha), of another team (Beta), and of another organisation (Gamma in organisation B).
Hidden objects answer 404 (their ids leak nothing); visible but untouchable ones answer 403.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import update

from models.entities import User
from models.enums import UserStatus
from tests.admin_api.conftest import World, assert_problem

TARGETS = ("own_team", "other_team", "other_org")
PERSON = {"own_team": "colleague", "other_team": "outsider", "other_org": "b_user"}
TEAM = {"own_team": "alpha", "other_team": "beta", "other_org": "gamma"}

# endpoint: (method, path template, body, status the target must have first)
USER_ENDPOINTS: dict[str, tuple[str, str, Any, UserStatus | None]] = {
    "detail": ("GET", "/api/v1/users/{user}", None, None),
    "edit": ("PATCH", "/api/v1/users/{user}", {"name": "Renamed"}, None),
    "approve": ("POST", "/api/v1/users/{user}/approve", None, UserStatus.PENDING),
    "decline": ("POST", "/api/v1/users/{user}/decline", None, UserStatus.PENDING),
    "revoke": ("POST", "/api/v1/users/{user}/revoke", {"reason": "left"}, None),
    "reactivate": ("POST", "/api/v1/users/{user}/reactivate", None, UserStatus.REVOKED),
}
TEAM_ENDPOINTS: dict[str, tuple[str, str, Any]] = {
    "members": ("GET", "/api/v1/teams/{team}/members", None),
    "add_member": ("PUT", "/api/v1/teams/{team}/members/{newcomer}", {"role": "MEMBER"}),
    "add_manager": ("PUT", "/api/v1/teams/{team}/members/{newcomer}", {"role": "MANAGER"}),
    "remove_member": ("DELETE", "/api/v1/teams/{team}/members/{member}", None),
}

ADMIN_ONLY = {"admin": (200, 200, 404), "manager": (403, 403, 403), "user": (403, 403, 403)}
# Expected status per (endpoint, role) for targets (own team, other team, other org).
EXPECTED: dict[str, dict[str, tuple[int, int, int]]] = {
    "detail": {"admin": (200, 200, 404), "manager": (200, 404, 404), "user": (404, 404, 404)},
    "edit": ADMIN_ONLY,
    "approve": ADMIN_ONLY,
    "decline": ADMIN_ONLY,
    "revoke": ADMIN_ONLY,
    "reactivate": ADMIN_ONLY,
    "members": {"admin": (200, 200, 404), "manager": (200, 404, 404), "user": (200, 404, 404)},
    # The newcomer is in none of the manager's teams: only an admin adds them (a manager
    # adds only people already in a team they manage; tests/security/test_manager_rule.py).
    "add_member": {"admin": (200, 200, 404), "manager": (404, 404, 404), "user": (403, 404, 404)},
    "add_manager": {"admin": (200, 200, 404), "manager": (403, 404, 404), "user": (403, 404, 404)},
    "remove_member": {
        "admin": (204, 204, 404),
        "manager": (204, 404, 404),
        "user": (403, 404, 404),
    },
}
MEMBER_OF = {"alpha": "colleague", "beta": "outsider", "gamma": "b_user"}

CASES = [
    pytest.param(endpoint, role, target, statuses[i], id=f"{endpoint}-{role}-{target}")
    for endpoint, by_role in EXPECTED.items()
    for role, statuses in by_role.items()
    for i, target in enumerate(TARGETS)
]


@pytest.mark.parametrize(("endpoint", "role", "target", "expected"), CASES)
def test_access_matrix(
    client, session, world: World, unchanged, endpoint, role, target, expected
) -> None:
    method, path, body = _request(session, world, endpoint, target)
    unchanged()
    response = client.open(path, method=method, json=body, headers=world.auth(role))
    if expected >= 400:
        assert_problem(response, expected)
        unchanged()
    else:
        assert response.status_code == expected, response.get_json()


def _request(session, world: World, endpoint: str, target: str) -> tuple[str, str, Any]:
    if endpoint in USER_ENDPOINTS:
        method, template, body, needs = USER_ENDPOINTS[endpoint]
        person = world.users[PERSON[target]]
        if needs is not None:
            session.execute(update(User).where(User.id == person).values(status=needs))
            session.commit()
        return method, template.format(user=person), body
    method, template, body = TEAM_ENDPOINTS[endpoint]
    team = TEAM[target]
    path = template.format(
        team=getattr(world, team),
        newcomer=world.users["newcomer"],
        member=world.users[MEMBER_OF[team]],
    )
    return method, path, body


@pytest.mark.parametrize(
    ("role", "expected"), [("admin", 201), ("manager", 403), ("user", 403), ("b_admin", 201)]
)
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/users", {"email": "fresh@acme.test", "name": "Fresh", "role": "USER"}),
        ("/api/v1/teams", {"name": "Delta"}),
    ],
    ids=["create_user", "create_team"],
)
def test_only_organisation_admins_create(
    client, world: World, unchanged, role, expected, path, body
) -> None:
    unchanged()
    response = client.post(path, json=body, headers=world.auth(role))
    if expected == 403:
        assert_problem(response, 403)
        unchanged()
    else:
        assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("role", ["admin", "manager", "user", "b_admin"])
def test_everyone_sees_themself(client, world: World, role) -> None:
    me = client.get("/api/v1/me", headers=world.auth(role))
    detail = client.get(f"/api/v1/users/{world.users[role]}", headers=world.auth(role))
    assert me.status_code == detail.status_code == 200
    assert me.get_json()["id"] == detail.get_json()["id"] == str(world.users[role])


VISIBLE_USERS = {
    "admin": {"admin", "manager", "user", "colleague", "outsider", "newcomer"},
    "manager": {"manager", "user", "colleague"},
    "user": {"user"},
    "b_admin": {"b_admin", "b_user"},
}
VISIBLE_TEAMS = {
    "admin": ["Alpha", "Beta"],
    "manager": ["Alpha"],
    "user": ["Alpha"],
    "b_admin": ["Gamma"],
}


@pytest.mark.parametrize("role", sorted(VISIBLE_USERS))
def test_lists_show_only_what_the_role_may_see(client, world: World, role) -> None:
    users = client.get("/api/v1/users", headers=world.auth(role)).get_json()["items"]
    teams = client.get("/api/v1/teams", headers=world.auth(role)).get_json()["items"]
    names = {name for name, uid in world.users.items() if str(uid) in {u["id"] for u in users}}
    assert names == VISIBLE_USERS[role]
    assert [team["name"] for team in teams] == VISIBLE_TEAMS[role]


def test_a_member_who_manages_another_team_sees_only_the_managed_teams_people(
    client, session, world: World
) -> None:
    """Membership is separate from the role: a MEMBER of Beta does not manage Beta's people."""
    from models.actions.teams import add_to_team, get_team
    from models.actions.users import get_user
    from models.enums import TeamRole
    from tests.support.factories import SETUP

    beta = get_team(session, world.org_a, world.beta)
    manager = get_user(session, world.org_a, world.users["manager"])
    add_to_team(session, team=beta, user=manager, role=TeamRole.MEMBER, actor=SETUP)
    session.commit()
    headers = world.auth("manager")
    assert client.get(f"/api/v1/teams/{world.beta}/members", headers=headers).status_code == 200
    outsider = world.users["outsider"]
    assert_problem(client.get(f"/api/v1/users/{outsider}", headers=headers), 404)
    assert_problem(
        client.delete(f"/api/v1/teams/{world.beta}/members/{outsider}", headers=headers), 403
    )


def test_an_id_from_another_organisation_is_never_reachable(client, world: World) -> None:
    """Organisation B's admin, asking for anything of organisation A, finds nothing."""
    headers = world.auth("b_admin")
    for name in ("admin", "user", "outsider"):
        person: uuid.UUID = world.users[name]
        assert_problem(client.get(f"/api/v1/users/{person}", headers=headers), 404)
        assert_problem(client.post(f"/api/v1/users/{person}/revoke", headers=headers), 404)
    assert_problem(client.get(f"/api/v1/teams/{world.alpha}/members", headers=headers), 404)
    assert_problem(
        client.put(
            f"/api/v1/teams/{world.gamma}/members/{world.users['user']}",
            json={"role": "MEMBER"},
            headers=headers,
        ),
        404,
    )
