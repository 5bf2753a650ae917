"""The user lifecycle through the admin API: each transition, its audit trail, its limits."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, update

from models.base import utcnow
from models.entities import AuditEvent, OutboxMessage, TeamMembership, User, VirtualApiKey
from models.enums import KeyType, UserStatus
from tests.admin_api.conftest import World, assert_problem
from tests.support import factories as f


def _status(sessions, user_id: uuid.UUID) -> UserStatus:
    with sessions() as fresh:
        return fresh.get_one(User, user_id).status


def _set_status(sessions, user_id: uuid.UUID, status: UserStatus) -> None:
    with sessions() as fresh:
        fresh.execute(update(User).where(User.id == user_id).values(status=status))
        fresh.commit()


def _actions(sessions, target: uuid.UUID) -> list[str]:
    with sessions() as fresh:
        query = select(AuditEvent).where(AuditEvent.target_id == str(target))
        return [
            event.action
            for event in fresh.scalars(query.order_by(AuditEvent.occurred_at, AuditEvent.id))
        ]


def _revoked(sessions, key_ids: list[uuid.UUID]) -> dict[uuid.UUID, bool]:
    with sessions() as fresh:
        keys = fresh.scalars(select(VirtualApiKey).where(VirtualApiKey.id.in_(key_ids)))
        return {key.id: key.revoked for key in keys}


@pytest.mark.parametrize(
    ("action", "start", "end", "audit"),
    [
        ("approve", UserStatus.PENDING, UserStatus.ACTIVE, "user.approved"),
        ("decline", UserStatus.PENDING, UserStatus.REVOKED, "user.declined"),
        ("revoke", UserStatus.ACTIVE, UserStatus.REVOKED, "user.revoked"),
        ("reactivate", UserStatus.REVOKED, UserStatus.ACTIVE, "user.reactivated"),
    ],
)
def test_each_transition_changes_status_and_writes_an_audit_event(
    client, sessions, world: World, action, start, end, audit
) -> None:
    person = world.users["colleague"]
    _set_status(sessions, person, start)
    response = client.post(f"/api/v1/users/{person}/{action}", headers=world.auth("admin"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == end.value
    assert _status(sessions, person) is end
    with sessions() as fresh:
        event = fresh.scalars(select(AuditEvent).where(AuditEvent.action == audit)).one()
        assert event.actor == "admin@acme.test" and event.source.value == "admin"
        assert event.before["status"] == start.value and event.after["status"] == end.value


INVALID = [
    ("approve", UserStatus.ACTIVE),
    ("approve", UserStatus.REVOKED),
    ("decline", UserStatus.ACTIVE),
    ("decline", UserStatus.REVOKED),
    ("revoke", UserStatus.PENDING),
    ("revoke", UserStatus.REVOKED),
    ("reactivate", UserStatus.ACTIVE),
    ("reactivate", UserStatus.PENDING),
]


@pytest.mark.parametrize(("action", "status"), INVALID)
def test_invalid_transitions_are_409_and_change_nothing(
    client, sessions, world: World, unchanged, action, status
) -> None:
    person = world.users["colleague"]
    _set_status(sessions, person, status)
    unchanged()
    response = client.post(f"/api/v1/users/{person}/{action}", headers=world.auth("admin"))
    problem = assert_problem(response, 409)
    assert problem["title"] == "invalid_transition" and problem["status"] == 409
    assert problem["current_status"] == status.value
    unchanged()


def test_reactivation_restores_only_the_keys_the_revocation_disabled(
    client, session, sessions, world: World
) -> None:
    org = session.get_one(User, world.users["colleague"]).organisation_id
    from models.entities import Organisation

    organisation = session.get_one(Organisation, org)
    person = session.get_one(User, world.users["colleague"])
    first, second, separate = (f.make_key(session, organisation, owner=person) for _ in range(3))
    team_key = f.make_key(
        session, organisation, key_type=KeyType.TEAM, created_by=person, owner=None
    )
    # An admin revoked one key on its own, before anything else.
    separate.revoked, separate.revoked_at = True, utcnow()
    session.commit()
    ids = [first.id, second.id, separate.id, team_key.id]
    headers = world.auth("admin")

    assert client.post(f"/api/v1/users/{person.id}/revoke", headers=headers).status_code == 200
    assert _revoked(sessions, ids) == {
        first.id: True,
        second.id: True,
        separate.id: True,
        team_key.id: False,
    }
    assert client.post(f"/api/v1/users/{person.id}/reactivate", headers=headers).status_code == 200
    assert _revoked(sessions, ids) == {
        first.id: False,
        second.id: False,
        separate.id: True,
        team_key.id: False,
    }

    # Between two revocations an admin disables `second` on its own: the second
    # reactivation must not bring it back.
    with sessions() as fresh:
        fresh.execute(
            update(VirtualApiKey)
            .where(VirtualApiKey.id == second.id)
            .values(revoked=True, revoked_at=utcnow())
        )
        fresh.commit()
    assert client.post(f"/api/v1/users/{person.id}/revoke", headers=headers).status_code == 200
    assert client.post(f"/api/v1/users/{person.id}/reactivate", headers=headers).status_code == 200
    assert _revoked(sessions, ids) == {
        first.id: False,
        second.id: True,
        separate.id: True,
        team_key.id: False,
    }
    actions = _actions(sessions, person.id)
    assert actions[-4:] == ["user.revoked", "user.reactivated"] * 2


def test_revocation_queues_the_gateway_invalidation_and_the_review_in_the_same_commit(
    client, session, sessions, world: World
) -> None:
    from models.entities import Organisation

    person = session.get_one(User, world.users["colleague"])
    key = f.make_key(session, session.get_one(Organisation, world.org_a), owner=person)
    session.commit()
    response = client.post(
        f"/api/v1/users/{person.id}/revoke", json={"reason": "left"}, headers=world.auth("admin")
    )
    assert response.status_code == 200
    with sessions() as fresh:
        tasks = {m.task: m.kwargs for m in fresh.scalars(select(OutboxMessage))}
    assert tasks["gateway.invalidate_keys"]["key_ids"] == [str(key.id)]
    assert "revocation_id" in tasks["reviews.open_for_revocation"]


@pytest.mark.parametrize(
    ("start", "requested", "end", "audit"),
    [
        (UserStatus.ACTIVE, "REVOKED", UserStatus.REVOKED, "user.revoked"),
        (UserStatus.PENDING, "REVOKED", UserStatus.REVOKED, "user.declined"),
        (UserStatus.PENDING, "ACTIVE", UserStatus.ACTIVE, "user.approved"),
        (UserStatus.REVOKED, "ACTIVE", UserStatus.ACTIVE, "user.reactivated"),
    ],
)
def test_edit_with_a_status_goes_through_the_lifecycle_operation(
    client, sessions, world: World, start, requested, end, audit
) -> None:
    person = world.users["colleague"]
    _set_status(sessions, person, start)
    response = client.patch(
        f"/api/v1/users/{person}",
        json={"name": "New Name", "role": "MANAGER", "status": requested},
        headers=world.auth("admin"),
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["name"], body["role"], body["status"]) == ("New Name", "MANAGER", end.value)
    assert _actions(sessions, person)[-2:] == ["user.updated", audit]


@pytest.mark.parametrize("start", [UserStatus.ACTIVE, UserStatus.REVOKED])
def test_edit_back_to_pending_is_409_and_keeps_the_other_fields(
    client, sessions, world: World, unchanged, start
) -> None:
    person = world.users["colleague"]
    _set_status(sessions, person, start)
    unchanged()
    response = client.patch(
        f"/api/v1/users/{person}",
        json={"name": "Should Not Stick", "status": "PENDING"},
        headers=world.auth("admin"),
    )
    assert_problem(response, 409)
    unchanged()


def test_edit_changes_email_case_insensitively_unique(client, sessions, world: World) -> None:
    person = world.users["colleague"]
    response = client.patch(
        f"/api/v1/users/{person}",
        json={"email": "Colleague@Acme.TEST"},
        headers=world.auth("admin"),
    )
    assert response.status_code == 200 and response.get_json()["email"] == "Colleague@Acme.TEST"
    response = client.patch(
        f"/api/v1/users/{person}", json={"email": "renamed@acme.test"}, headers=world.auth("admin")
    )
    assert response.get_json()["email"] == "renamed@acme.test"


def test_an_edit_that_changes_nothing_writes_no_audit_event(
    client, sessions, world: World, unchanged
) -> None:
    person = world.users["colleague"]
    unchanged()
    with sessions() as fresh:
        name = fresh.get_one(User, person).name
    response = client.patch(
        f"/api/v1/users/{person}", json={"name": name}, headers=world.auth("admin")
    )
    assert response.status_code == 200
    unchanged()


def test_create_user_follows_the_approval_policy(client, session, sessions, world: World):
    from models.entities import OrganisationSettings

    session.execute(
        update(OrganisationSettings)
        .where(OrganisationSettings.organisation_id == world.org_a)
        .values(approval_required=True)
    )
    session.commit()
    response = client.post(
        "/api/v1/users",
        json={"email": "pending@acme.test", "name": "Waiting", "role": "MANAGER"},
        headers=world.auth("admin"),
    )
    assert response.status_code == 201
    body = response.get_json()
    assert (body["status"], body["role"], body["organisation_id"]) == (
        "PENDING",
        "MANAGER",
        str(world.org_a),
    )
    assert _actions(sessions, uuid.UUID(body["id"])) == ["user.created"]


def test_team_membership_changes_are_audited_and_visible(client, sessions, world: World):
    headers = world.auth("admin")
    newcomer = world.users["newcomer"]
    put = client.put(
        f"/api/v1/teams/{world.beta}/members/{newcomer}", json={"role": "MEMBER"}, headers=headers
    )
    assert put.status_code == 200
    promote = client.put(
        f"/api/v1/teams/{world.beta}/members/{newcomer}", json={"role": "MANAGER"}, headers=headers
    )
    roles = {m["user_id"]: m["team_role"] for m in promote.get_json()["items"]}
    assert roles[str(newcomer)] == "MANAGER"
    detail = client.get(f"/api/v1/users/{newcomer}", headers=headers).get_json()
    assert [(t["name"], t["team_role"]) for t in detail["teams"]] == [("Beta", "MANAGER")]
    delete = client.delete(f"/api/v1/teams/{world.beta}/members/{newcomer}", headers=headers)
    assert delete.status_code == 204
    assert client.get(f"/api/v1/users/{newcomer}", headers=headers).get_json()["teams"] == []
    with sessions() as fresh:
        query = select(AuditEvent.action).where(AuditEvent.target_id == str(world.beta))
        actions = list(fresh.scalars(query.order_by(AuditEvent.occurred_at, AuditEvent.id)))
    assert actions[-3:] == ["team.member_added", "team.member_role_changed", "team.member_removed"]


def _memberships(sessions, user_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    with sessions() as fresh:
        rows = fresh.scalars(select(TeamMembership).where(TeamMembership.user_id == user_id))
        return sorted((m.team_id, m.role.value) for m in rows)


@pytest.mark.parametrize(
    ("who", "team", "role"),
    [
        ("newcomer", "beta", "MEMBER"),  # a new membership
        ("colleague", "alpha", "MANAGER"),  # a role change of the one they had
    ],
)
def test_putting_a_revoked_person_in_a_team_is_409_and_audited(
    client, sessions, world: World, who, team, role
) -> None:
    """An admin adding a leaver to a team (it would grant them nothing) is refused by
    teams.add_to_team: problem JSON, no membership written or changed, one refusal event on
    the person saying who, which team and why."""
    person, team_id = world.users[who], getattr(world, team)
    _set_status(sessions, person, UserStatus.REVOKED)
    before, team_events = _memberships(sessions, person), _actions(sessions, team_id)
    response = client.put(
        f"/api/v1/teams/{team_id}/members/{person}",
        json={"role": role},
        headers=world.auth("admin"),
    )
    assert_problem(response, 409, detail="is REVOKED")
    assert _memberships(sessions, person) == before
    assert _actions(sessions, team_id) == team_events
    with sessions() as fresh:
        (event,) = fresh.scalars(
            select(AuditEvent).where(AuditEvent.action == "user.team_membership_refused")
        )
    assert (event.target_type, event.target_id) == ("user", str(person))
    assert event.actor_user_id == world.users["admin"]
    assert event.after == {
        "team_id": str(team_id),
        "team_name": team.capitalize(),
        "team_role": role,
        "user_status": "REVOKED",
        "reason": "user_revoked",
    }


def test_a_manager_putting_a_revoked_person_in_a_team_is_409_and_audited_as_an_admin(
    client, sessions, world: World
) -> None:
    """The manager of Alpha and Beta adds Alpha's colleague, now revoked, to Beta: refused
    by teams.add_to_team as an admin's add is (409, audited on the person), not by the
    manager's permission check (403, nothing audited) as before."""
    person = world.users["colleague"]
    made_manager = client.put(
        f"/api/v1/teams/{world.beta}/members/{world.users['manager']}",
        json={"role": "MANAGER"},
        headers=world.auth("admin"),
    )
    assert made_manager.status_code == 200, made_manager.get_data(as_text=True)
    _set_status(sessions, person, UserStatus.REVOKED)
    before, team_events = _memberships(sessions, person), _actions(sessions, world.beta)
    response = client.put(
        f"/api/v1/teams/{world.beta}/members/{person}",
        json={"role": "MEMBER"},
        headers=world.auth("manager"),
    )
    assert_problem(response, 409, detail="is REVOKED")
    assert _memberships(sessions, person) == before
    assert _actions(sessions, world.beta) == team_events
    with sessions() as fresh:
        (event,) = fresh.scalars(
            select(AuditEvent).where(AuditEvent.action == "user.team_membership_refused")
        )
    assert (event.target_id, event.actor_user_id) == (str(person), world.users["manager"])


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("POST", "/revoke", None),
        ("PATCH", "", {"role": "USER"}),
        ("PATCH", "", {"status": "REVOKED"}),
    ],
)
def test_an_admin_cannot_lock_themself_out(
    client, world: World, unchanged, method, suffix, body
) -> None:
    me = world.users["admin"]
    unchanged()
    response = client.open(
        f"/api/v1/users/{me}{suffix}", method=method, json=body, headers=world.auth("admin")
    )
    assert_problem(response, 403, detail="your own")
    unchanged()


def test_an_admin_may_still_edit_their_own_name(client, world: World) -> None:
    me = world.users["admin"]
    response = client.patch(
        f"/api/v1/users/{me}",
        json={"name": "Renamed Admin", "role": "ORG_ADMIN", "status": "ACTIVE"},
        headers=world.auth("admin"),
    )
    assert response.status_code == 200 and response.get_json()["name"] == "Renamed Admin"
