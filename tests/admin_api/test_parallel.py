"""Two admins at once on the admin API, over real HTTP: the requests compose as if one came
after the other (final state, one audit event per change, no 500, no 409 where a serial
order succeeds)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.db import SessionFactory
from models.entities import ApiToken, AuditEvent, Organisation, Team, User
from models.enums import Role, UserStatus
from tests.admin_api.conftest import World
from tests.scim.conftest import live_server as _live_server
from tests.support import factories as f
from tests.support.parallel import in_parallel

live_server = _live_server


@pytest.fixture
def api(live_server: str, world: World) -> Iterator[Any]:
    yield lambda who: Caller(live_server, world.auth(who))


class Caller:
    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.base, self.headers = base + "/api/v1", headers

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        return lambda: requests.request(
            method, self.base + path, json=body, headers=self.headers, timeout=60
        )


def events(sessions: SessionFactory, action: str, target: str | None = None) -> list[AuditEvent]:
    with sessions() as fresh:
        query = select(AuditEvent).where(AuditEvent.action == action)
        if target is not None:
            query = query.where(AuditEvent.target_id == target)
        return list(fresh.scalars(query.order_by(AuditEvent.occurred_at)))


def test_two_role_changes_at_once_chain_in_the_audit_trail(
    api, world: World, sessions: SessionFactory, app: Flask
) -> None:
    """Serially the second change's `before` is the first's `after`; without the person's
    lock both read USER and the trail showed two changes from USER."""
    user = str(world.users["colleague"])
    admin = api("admin")
    answers = in_parallel(
        [
            admin("PATCH", f"/users/{user}", {"role": "MANAGER"}),
            admin("PATCH", f"/users/{user}", {"role": "ORG_ADMIN"}),
        ]
    )
    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    trail = events(sessions, "user.updated", user)
    assert len(trail) == 2
    roles = [(event.before["role"], event.after["role"]) for event in trail]
    assert roles[0][0] == "USER" and roles[1][0] == roles[0][1], roles
    with sessions() as fresh:
        assert fresh.get(User, world.users["colleague"]).role == Role(roles[1][1])


def test_two_teams_of_one_name_at_once_make_one_team_and_a_409(
    api, world: World, sessions: SessionFactory, app: Flask
) -> None:
    admin = api("admin")
    answers = in_parallel([admin("POST", "/teams", {"name": "Gamma Ray"})] * 4)
    assert Counter(r.status_code for r in answers) == {201: 1, 409: 3}, [r.text for r in answers]
    for answer in answers:
        if answer.status_code == 409:
            assert answer.headers["Content-Type"] == "application/problem+json"
    with sessions() as fresh:
        named = fresh.scalars(select(Team).where(Team.organisation_id == world.org_a)).all()
    ours = [team for team in named if team.name == "Gamma Ray"]
    assert len(ours) == 1
    assert len(events(sessions, "team.created", str(ours[0].id))) == 1


def test_one_token_revoked_twice_at_once_is_revoked_and_audited_once(
    api, world: World, sessions: SessionFactory, app: Flask
) -> None:
    with sessions() as fresh:
        token_id = fresh.scalars(
            select(ApiToken.id).where(ApiToken.user_id == world.users["manager"])
        ).one()
    admin = api("admin")
    answers = in_parallel([admin("DELETE", f"/tokens/{token_id}")] * 4)
    assert {r.status_code for r in answers} == {204}, [r.text for r in answers]
    assert len(events(sessions, "token.revoked", str(token_id))) == 1


def test_a_token_revoked_while_it_is_used_is_refused_once_the_revocation_answered(
    api, live_server: str, world: World, app: Flask
) -> None:
    """Uses racing the revocation may come before it (200) or after (401); once the DELETE
    has answered, the revoking process refuses the token. A use that read the token just
    before the revocation committed cached it after the revocation had forgotten it, and the
    token went on working here for the cache's lifetime."""
    admin = api("admin")
    for _ in range(5):
        issued = admin("POST", "/tokens", {"scope": "admin", "name": "racing"})()
        assert issued.status_code == 201, issued.text
        user = Caller(live_server, {"Authorization": f"Bearer {issued.json()['token']}"})
        answers = in_parallel(
            [admin("DELETE", f"/tokens/{issued.json()['id']}")] + [user("GET", "/me")] * 6
        )
        assert answers[0].status_code == 204, answers[0].text
        assert {r.status_code for r in answers[1:]} <= {200, 401}, [r.text for r in answers]
        assert user("GET", "/me")().status_code == 401


def test_two_people_of_one_email_at_once_make_one_person_and_a_409(
    api, world: World, sessions: SessionFactory, app: Flask
) -> None:
    admin = api("admin")
    body = {"email": "twin@acme.test", "name": "Twin", "role": "USER"}
    answers = in_parallel([admin("POST", "/users", body)] * 4)
    assert Counter(r.status_code for r in answers) == {201: 1, 409: 3}, [r.text for r in answers]
    with sessions() as fresh:
        twins = fresh.scalars(select(User).where(User.email_key == "twin@acme.test")).all()
    assert len(twins) == 1
    assert len(events(sessions, "user.created", str(twins[0].id))) == 1


def test_approve_and_decline_of_one_pending_person_at_once_is_one_or_the_other(
    api, world: World, sessions: SessionFactory, session: Session, app: Flask
) -> None:
    organisation = session.get_one(Organisation, world.org_a)
    pending = f.make_user(session, organisation, status=UserStatus.PENDING)
    session.commit()
    admin = api("admin")
    answers = in_parallel(
        [
            admin("POST", f"/users/{pending.id}/approve"),
            admin("POST", f"/users/{pending.id}/decline", {"reason": "unknown"}),
        ]
    )
    codes = [r.status_code for r in answers]
    assert sorted(codes) == [200, 409], [r.text for r in answers]
    with sessions() as fresh:
        status = fresh.get_one(User, pending.id).status
    assert status is (UserStatus.ACTIVE if codes[0] == 200 else UserStatus.REVOKED)
    decided = events(sessions, "user.approved", str(pending.id)) + events(
        sessions, "user.declined", str(pending.id)
    )
    assert len(decided) == 1


def test_two_admins_revoking_one_person_at_once_revoke_once(
    api, world: World, sessions: SessionFactory, app: Flask
) -> None:
    """A PATCH of the status and a POST …/revoke at the same moment: one revocation."""
    user = str(world.users["colleague"])
    admin = api("admin")
    answers = in_parallel(
        [
            admin("PATCH", f"/users/{user}", {"status": "REVOKED"}),
            admin("POST", f"/users/{user}/revoke", {"reason": "left"}),
            admin("PATCH", f"/users/{user}", {"role": "MANAGER"}),
        ]
    )
    assert {r.status_code for r in answers} <= {200, 409}, [r.text for r in answers]
    assert 500 not in {r.status_code for r in answers}
    assert len(events(sessions, "user.revoked", user)) == 1
    with sessions() as fresh:
        assert fresh.get_one(User, world.users["colleague"]).status is UserStatus.REVOKED


def test_one_membership_set_and_removed_twice_at_once_is_audited_once_each(
    api, world: World, sessions: SessionFactory, app: Flask
) -> None:
    team, user = world.beta, world.users["newcomer"]
    admin = api("admin")
    path = f"/teams/{team}/members/{user}"
    added = in_parallel([admin("PUT", path, {"role": "MEMBER"})] * 4)
    assert {r.status_code for r in added} == {200}, [r.text for r in added]
    removed = in_parallel([admin("DELETE", path)] * 4)
    codes = sorted(r.status_code for r in removed)
    assert codes == [204, 404, 404, 404], [r.text for r in removed]  # removed once, then gone
    with sessions() as fresh:
        trail = fresh.scalars(
            select(AuditEvent).where(
                AuditEvent.action.like("team.member%"), AuditEvent.target_id == str(team)
            )
        ).all()
        actions = sorted(
            event.action
            for event in trail
            if str(user) in {(side or {}).get("user_id") for side in (event.before, event.after)}
        )
    assert actions == ["team.member_added", "team.member_removed"], actions


def test_one_team_deleted_twice_at_once_is_deleted_once(
    api, world: World, sessions: SessionFactory, app: Flask
) -> None:
    admin = api("admin")
    answers = in_parallel([admin("DELETE", f"/teams/{world.beta}")] * 3)
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 404, 404], [r.text for r in answers]
    assert len(events(sessions, "team.deleted", str(world.beta))) == 1
