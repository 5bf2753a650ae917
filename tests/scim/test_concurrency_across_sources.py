"""An admin and the IdP changing one person at the same moment compose as if one came after
the other: each lifecycle operation locks the person and reads them again first
(models.person_lock), whichever source calls it. Real HTTP on both sides, in parallel."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import lifecycle
from models.actions import teams as team_actions
from models.actor import Actor
from models.entities import (
    AuditEvent,
    Organisation,
    Revocation,
    ScimUser,
    TeamMembership,
    User,
)
from models.enums import Role, Source, TeamRole, UserStatus
from tests.scim.conftest import SCIM, ops
from tests.scim.payloads import okta_create_group, okta_create_user
from tests.support import factories
from tests.support.parallel import in_parallel

LDAP = Actor(Source.LDAP, "ldap:corp")
PEOPLE = 12


class Race:
    """An admin (the admin API) and the IdP (SCIM) over real HTTP, each request a callable
    for in_parallel."""

    def __init__(self, base_url: str, admin_token: str, scim_secret: str) -> None:
        self.base = base_url
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self.scim = {"Authorization": f"Bearer {scim_secret}", "Content-Type": SCIM}

    def admin_revoke(self, user: User) -> Callable[[], requests.Response]:
        url = f"{self.base}/api/v1/users/{user.id}/revoke"
        return lambda: requests.post(url, json={"reason": "pinned"}, headers=self.admin)

    def admin_reactivate(self, user: User) -> Callable[[], requests.Response]:
        url = f"{self.base}/api/v1/users/{user.id}/reactivate"
        return lambda: requests.post(url, json={}, headers=self.admin, timeout=60)

    def idp_says(self, scim_id: str, active: bool) -> Callable[[], requests.Response]:
        url = f"{self.base}/scim/v2/Users/{scim_id}"
        body = ops({"op": "replace", "path": "active", "value": active})
        return lambda: requests.patch(url, json=body, headers=self.scim, timeout=60)

    def admin_adds(self, team_id: str, user: User) -> Callable[[], requests.Response]:
        url = f"{self.base}/api/v1/teams/{team_id}/members/{user.id}"
        return lambda: requests.put(url, json={"role": "MEMBER"}, headers=self.admin, timeout=60)

    def idp_adds(self, group_id: str, scim_id: str) -> Callable[[], requests.Response]:
        url = f"{self.base}/scim/v2/Groups/{group_id}"
        body = ops({"op": "add", "path": "members", "value": [{"value": scim_id}]})
        return lambda: requests.patch(url, json=body, headers=self.scim, timeout=60)

    def both_at_once(self, people: dict[str, User], active: bool) -> None:
        """Every admin revoke and every IdP PATCH at the same moment; each must answer 200."""
        calls = [self.admin_revoke(user) for user in people.values()]
        calls += [self.idp_says(scim_id, active) for scim_id in people]
        answered = in_parallel(calls)
        assert Counter(r.status_code for r in answered) == Counter({200: len(calls)}), [
            r.text for r in answered if r.status_code != 200
        ]


@pytest.fixture
def race(live_server: str, scim_secret: str, session: Session, org: Organisation) -> Race:
    admin = factories.make_user(session, org, role=Role.ORG_ADMIN)
    token = factories.admin_token(session, org, admin)
    session.commit()
    return Race(live_server, token, scim_secret)


def scim_people(live_server: str, scim_secret: str) -> list[str]:
    headers = {"Authorization": f"Bearer {scim_secret}", "Content-Type": SCIM}
    created = [
        requests.post(
            f"{live_server}/scim/v2/Users",
            json=okta_create_user(f"racer{n}@example.com"),
            headers=headers,
            timeout=30,
        )
        for n in range(PEOPLE)
    ]
    assert {response.status_code for response in created} == {201}
    return [response.json()["id"] for response in created]


def revoked_by_ldap(session: Session, scim_ids: list[str]) -> dict[str, User]:
    people = {
        str(scim_user.id): scim_user.user
        for scim_user in session.scalars(
            select(ScimUser).where(ScimUser.id.in_([uuid.UUID(key) for key in scim_ids]))
        )
    }
    for user in people.values():
        lifecycle.revoke(session, user=user, actor=LDAP, reason="disabled in the directory")
    session.commit()
    return people


def test_an_admin_pin_and_the_idps_deactivation_at_once_both_stand(
    race, live_server, scim_secret, session
):
    """A person LDAP revoked: at the same moment an admin revokes them (the admin pins them)
    and the IdP says inactive (SCIM joins). Serially, all three stand whatever the order;
    before the person's lock, each read the standing sources before the other wrote them,
    and the later write dropped the other's."""
    people = revoked_by_ldap(session, scim_people(live_server, scim_secret))

    race.both_at_once(people, active=False)

    session.expire_all()
    for user in people.values():
        revocation = lifecycle.latest_revocation(session, user.id)
        standing = lifecycle.standing_sources(revocation)
        assert sorted(standing) == sorted([Source.LDAP, Source.ADMIN, Source.SCIM]), user.email
        joined = session.scalars(
            select(AuditEvent.after).where(
                AuditEvent.target_id == str(user.id),
                AuditEvent.action == lifecycle.REVOCATION_JOINED,
            )
        ).all()
        assert sorted(after["revoked_by"] for after in joined) == ["ldap", "ldap"]
    session.commit()


def test_the_idp_letting_go_while_an_admin_pins_keeps_the_person_out(
    race, live_server, scim_secret, session
):
    """A person whom only SCIM still holds out (LDAP revoked them, SCIM joined, LDAP let
    go): at the same moment the IdP says active and an admin revokes. Serially, either the
    admin pins them and the IdP's letting go leaves them out, or the IdP brings them back and
    the admin revokes them anew: revoked, with the admin standing, either way. Before the
    person's lock, the admin could pin a revocation the IdP had just undone, and the person
    was back with the pin lost."""
    people = revoked_by_ldap(session, scim_people(live_server, scim_secret))
    for scim_id in people:
        assert race.idp_says(scim_id, active=False)().status_code == 200
    for user in people.values():  # LDAP lets go: SCIM alone stands
        assert lifecycle.reactivate(session, user=user, actor=LDAP) is lifecycle.Outcome.REFUSED
    session.commit()

    # The admin's revoke answers 200 whether it pinned the person or revoked them anew
    # after the IdP brought them back; the IdP's PATCH answers 200 either way.
    race.both_at_once(people, active=True)

    session.expire_all()
    for user in people.values():
        person = session.get_one(User, user.id)
        assert person.status is UserStatus.REVOKED, person.email
        revocation = lifecycle.latest_revocation(session, user.id)
        assert Source.ADMIN in lifecycle.standing_sources(revocation), person.email
    session.commit()


def test_an_admin_and_the_idp_adding_the_same_people_at_once_add_each_once(
    race, live_server, scim_secret, session
):
    """At the same moment an admin adds each person to a team (add_to_team) and the IdP adds
    them to the team's group (a SCIM PATCH: add_members, one INSERT for its members). Serially
    the later finds them a member: every request answers 200, each person is a member once,
    added once in the audit. Before, a bulk INSERT that lost to the admin's answered 500."""
    headers = {"Authorization": f"Bearer {scim_secret}", "Content-Type": SCIM}
    group = requests.post(
        f"{live_server}/scim/v2/Groups", json=okta_create_group("Racers"), headers=headers
    )
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    people = {
        str(scim_user.id): scim_user.user
        for scim_user in session.scalars(
            select(ScimUser).where(
                ScimUser.id.in_([uuid.UUID(s) for s in scim_people(live_server, scim_secret)])
            )
        )
    }
    session.commit()

    calls = [race.admin_adds(group_id, user) for user in people.values()]
    calls += [race.idp_adds(group_id, scim_id) for scim_id in people]
    answered = in_parallel(calls)

    assert Counter(r.status_code for r in answered) == Counter({200: len(calls)}), [
        r.text for r in answered if r.status_code != 200
    ]
    session.expire_all()
    members = session.scalars(
        select(TeamMembership.user_id).where(TeamMembership.team_id == uuid.UUID(group_id))
    ).all()
    assert sorted(members) == sorted(user.id for user in people.values())
    added = Counter(
        after["user_id"]
        for after in session.scalars(
            select(AuditEvent.after).where(AuditEvent.action == "team.member_added")
        )
    )
    assert added == Counter({str(user.id): 1 for user in people.values()})
    session.commit()


def test_an_admin_reactivation_and_the_idps_deactivation_at_once_end_as_one_order_says(
    race, live_server, scim_secret, session
):
    """People SCIM revoked: at the same moment an admin brings them back and the IdP says
    inactive again. Serially, either the admin's reactivation comes first and the IdP revokes
    them anew, or the IdP's repeat changes nothing and the admin brings them back: revoked
    with one revocation more, or active. Either way the trail says which, once each."""
    people = revoked_by_ldap(session, scim_people(live_server, scim_secret))
    for scim_id in people:  # SCIM joins
        assert race.idp_says(scim_id, active=False)().status_code == 200
    for user in people.values():  # LDAP lets go: SCIM alone stands
        assert lifecycle.reactivate(session, user=user, actor=LDAP) is lifecycle.Outcome.REFUSED
    session.commit()

    calls = [race.admin_reactivate(user) for user in people.values()]
    calls += [race.idp_says(scim_id, active=False) for scim_id in people]
    answered = in_parallel(calls)

    assert Counter(r.status_code for r in answered) == Counter({200: len(calls)}), [
        r.text for r in answered if r.status_code != 200
    ]
    session.expire_all()
    for user in people.values():
        person = session.get_one(User, user.id)
        trail = session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.target_id == str(user.id),
                AuditEvent.action.in_(["user.revoked", "user.reactivated"]),
            )
        ).all()
        revocations = session.scalars(select(Revocation).where(Revocation.user_id == user.id)).all()
        if person.status is UserStatus.REVOKED:  # brought back, then revoked anew by SCIM
            assert Counter(trail) == {"user.revoked": 2, "user.reactivated": 1}, trail
            assert sorted(r.undone_at is None for r in revocations) == [False, True]
            latest = lifecycle.latest_revocation(session, user.id)
            assert latest is not None and latest.source is Source.SCIM
        else:  # the IdP's repeat changed nothing, then the admin brought them back
            assert person.status is UserStatus.ACTIVE
            assert Counter(trail) == {"user.revoked": 1, "user.reactivated": 1}, trail
            assert [r.undone_at is None for r in revocations] == [False]
    session.commit()


def test_a_bulk_add_that_lost_to_another_write_keeps_that_membership(session, org):
    """add_members adds the people its caller found not to be members; one added by another
    transaction since (an admin, here as a manager) is left as that one wrote it and audited
    once, as add_to_team leaves it when it loses. Before: IntegrityError on both databases."""
    team = factories.make_team(session, org)
    user, newcomer = factories.make_user(session, org), factories.make_user(session, org)
    factories.add_member(session, team, user, TeamRole.MANAGER)  # the admin's, committed
    session.commit()

    scim = Actor(Source.SCIM, "scim")
    team_actions.add_members(
        session, team=team, users=[user, newcomer], role=TeamRole.MEMBER, actor=scim
    )
    session.commit()

    roles = dict(
        session.execute(
            select(TeamMembership.user_id, TeamMembership.role).where(
                TeamMembership.team_id == team.id
            )
        ).all()
    )
    assert roles == {user.id: TeamRole.MANAGER, newcomer.id: TeamRole.MEMBER}
    added = session.execute(
        select(AuditEvent.source, AuditEvent.after).where(AuditEvent.action == "team.member_added")
    ).all()
    assert sorted((source, after["user_id"]) for source, after in added) == sorted(
        [(Source.ADMIN, str(user.id)), (Source.SCIM, str(newcomer.id))]
    )
