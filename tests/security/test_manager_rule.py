"""A manager cannot add just anyone to a team they manage to read that person's keys: only
people they can already see, who are not PENDING (a REVOKED one is refused by the team
operation, 409, as for an admin) and not Organisation Admins."""

from __future__ import annotations

from models.enums import Role, TeamRole, UserStatus
from tests.support import factories as f


def _scene(session):
    org = f.make_org(session)
    manager = f.make_user(session, org, role=Role.MANAGER)
    mine, other = f.make_team(session, org), f.make_team(session, org)
    f.add_member(session, mine, manager, TeamRole.MANAGER)
    seen = f.make_user(session, org, role=Role.USER)
    f.add_member(session, mine, seen)
    stranger = f.make_user(session, org, role=Role.USER)
    f.add_member(session, other, stranger)
    f.make_key(session, org, owner=stranger)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    f.add_member(session, mine, admin)
    revoked = f.make_user(session, org, role=Role.USER)
    f.add_member(session, mine, revoked)
    revoked.status = UserStatus.REVOKED
    second = f.make_team(session, org)
    f.add_member(session, second, manager, TeamRole.MANAGER)
    token = f.admin_token(session, org, manager)
    session.commit()
    return {"Authorization": f"Bearer {token}"}, second, seen, stranger, admin, revoked, org


def test_a_manager_adds_only_people_already_in_their_teams(client, session):
    auth, second, seen, stranger, admin, revoked, _org = _scene(session)

    def add(user):
        return client.put(
            f"/api/v1/teams/{second.id}/members/{user.id}", json={"role": "MEMBER"}, headers=auth
        )

    hidden = add(stranger)
    assert hidden.status_code == 404  # not even told the person exists
    assert client.get(f"/api/v1/users/{stranger.id}", headers=auth).status_code == 404
    assert add(admin).status_code == 403
    # Refused by the team operation, as an admin's add is (docs/lifecycle.md): nothing written.
    assert add(revoked).status_code == 409
    added = add(seen)
    assert added.status_code == 200
    assert {m["user_id"] for m in added.json["items"]} >= {str(seen.id)}
    members = client.get(f"/api/v1/teams/{second.id}/members", headers=auth).json["items"]
    assert str(stranger.id) not in {m["user_id"] for m in members}


def test_an_admin_still_adds_anyone_active(client, session):
    _, second, _seen, stranger, _admin, _revoked, org = _scene(session)
    boss = f.make_user(session, org, role=Role.ORG_ADMIN)
    auth = {"Authorization": f"Bearer {f.admin_token(session, org, boss)}"}
    session.commit()
    added = client.put(
        f"/api/v1/teams/{second.id}/members/{stranger.id}", json={"role": "MEMBER"}, headers=auth
    )
    assert added.status_code == 200
