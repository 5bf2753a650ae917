"""Access end dates revoke on time, exactly once, through real workers and beats whose clocks
run ahead (time-machine in each process): a date set by an admin or by SCIM, one extended,
one cleared, and dates that passed while nothing ran."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy.orm import Session

from connectors.scim.schemas import ENTERPRISE, USER
from models.base import utcnow
from models.entities import Organisation, User
from models.enums import Role, Source, UserStatus
from tests.access_end.conftest import (
    LEAD,
    TICK,
    assert_revoked_once_on_time,
    audited,
    revocations,
    revocations_of,
    scim_user_id,
)
from tests.scim.conftest import ScimClient
from tests.support import factories as f
from tests.support.wait import wait_until


def _setup(session: Session) -> tuple[Organisation, dict[str, str]]:
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    token = f.admin_token(session, org, admin)
    return org, {"Authorization": f"Bearer {token}"}


def _set_end(client, headers, user: User, ends_at: str | None) -> dict:  # type: ignore[no-untyped-def]
    answer = client.put(
        f"/api/v1/users/{user.id}/access-end", json={"access_ends_at": ends_at}, headers=headers
    )
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def _scim_person(client, session: Session, org: Organisation, ends_at: str) -> User:  # type: ignore[no-untyped-def]
    scim = ScimClient(client, f.scim_token(session, org))
    session.commit()
    created = scim.post(
        "/Users",
        {
            "schemas": [USER, ENTERPRISE],
            "userName": "leaver@example.com",
            "emails": [{"value": "leaver@example.com", "primary": True}],
            "active": True,
            ENTERPRISE: {"employeeLeaveDateTime": ends_at},
        },
    )
    assert created.status_code == 201, created.json
    assert created.json[ENTERPRISE]["employeeLeaveDateTime"].startswith(ends_at[:19])
    person = session.get_one(User, scim_user_id(session, created.json["id"]))
    session.commit()  # SQLite: a session that read holds the write lock until it ends
    return person


def test_dates_set_by_an_admin_and_by_scim_revoke_on_time_once_and_extending_cancels(
    client, session, sessions, run_ahead
) -> None:
    org, headers = _setup(session)
    by_admin, extended, cleared = (f.make_user(session, org) for _ in range(3))
    f.make_key(session, org, owner=by_admin)
    session.commit()
    ends = (utcnow() + timedelta(days=30)).replace(microsecond=0)
    stamp = ends.isoformat().replace("+00:00", "Z")
    assert _set_end(client, headers, by_admin, stamp)["access_ends_at"] == ends.isoformat()
    by_scim = _scim_person(client, session, org, stamp)
    _set_end(client, headers, extended, stamp)
    _set_end(client, headers, cleared, stamp)
    _set_end(client, headers, extended, (ends + timedelta(days=1)).isoformat())
    _set_end(client, headers, cleared, None)
    session.commit()

    due, kept = [by_admin.id, by_scim.id], [extended.id, cleared.id]
    session.commit()  # SQLite: reading the ids took the write lock

    run_ahead(ends - LEAD)  # two workers and two beats, shortly before the date

    assert_revoked_once_on_time(session, sessions, due, ends)
    for user_id in kept:
        assert session.get_one(User, user_id).status is UserStatus.ACTIVE
        assert revocations(session, user_id) == []
    assert audited(session, "user.access_end_changed", kept[0]) == 1
    assert audited(session, "user.access_end_cleared", kept[1]) == 1


def test_a_date_that_passed_while_nothing_ran_is_caught_up_once(
    client, session, sessions, run_ahead
) -> None:
    org, headers = _setup(session)
    people = [f.make_user(session, org) for _ in range(3)]
    session.commit()
    ends = (utcnow() + timedelta(days=10)).replace(microsecond=0)
    for person in people:
        _set_end(client, headers, person, ends.isoformat())
    ids = [person.id for person in people]
    session.commit()

    run_ahead(ends + timedelta(days=3))  # workers and beats come back three days late

    for user_id in ids:
        wait_until(lambda u=user_id: revocations_of(sessions, u), timeout=60, what="caught up")
    time.sleep(5 * TICK)
    for user_id in ids:
        (revocation,) = revocations(session, user_id)
        assert revocation.source is Source.SCHEDULE
        assert revocation.revoked_at >= ends + timedelta(days=3)
        assert audited(session, "user.revoked", user_id) == 1
