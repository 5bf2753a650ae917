"""The admin API never leaves an organisation without an active Organisation Admin
(models/actions/last_admin.py): a revocation, a demotion or a passed end date of the last one
is refused with a 409 `last_admin` problem and changes nothing; with another active admin it
is made (two admins demoting each other at once: tests/lifecycle/test_last_admin_races.py).

Organisation A of the world has one ORG_ADMIN, `admin`. An admin cannot change their own
access (403), so the one who acts here is the platform's SUPER_ADMIN working in A (no
operation grants that role: it is set on the row)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.db import SessionFactory
from models.entities import AuditEvent, Organisation, User
from models.enums import Role, UserStatus
from tests.admin_api.conftest import World, assert_problem, call
from tests.support import factories as f

PASSED = (utcnow() - timedelta(days=1)).replace(microsecond=0).isoformat()
# (method, path under /users/<id>, body): each ends the person's admin access
ENDINGS = {
    "revoke": ("POST", "/revoke", {"reason": "left"}),
    "demote": ("PATCH", "", {"role": "MANAGER"}),
    "status": ("PATCH", "", {"status": "REVOKED"}),
    "demote_and_revoke": ("PATCH", "", {"role": "USER", "status": "REVOKED"}),
    "passed_end_date": ("PUT", "/access-end", {"access_ends_at": PASSED}),
}


def _platform_admin(session: Session, world: World) -> dict[str, str]:
    """A SUPER_ADMIN in organisation A, with a token: the headers that act as them."""
    org = session.get_one(Organisation, world.org_a)
    person = f.make_user(session, org, role=Role.ORG_ADMIN, email="platform@odock.test")
    person.role = Role.SUPER_ADMIN
    secret = f.admin_token(session, org, person)
    session.commit()
    return {"Authorization": f"Bearer {secret}"}


def _person(sessions: SessionFactory, user_id: uuid.UUID) -> User:
    with sessions() as fresh:
        user = fresh.get_one(User, user_id)
        fresh.expunge(user)
        return user


@pytest.mark.parametrize("ending", ENDINGS)
def test_the_last_admin_is_kept(
    client, session, sessions, world: World, unchanged, ending: str
) -> None:
    headers = _platform_admin(session, world)
    method, path, body = ENDINGS[ending]
    unchanged()
    response = call(
        client, method, f"/api/v1/users/{world.users['admin']}{path}", json=body, headers=headers
    )
    problem = assert_problem(response, 409, detail="last active Organisation Admin")
    assert problem["title"] == "last_admin"
    unchanged()
    admin = _person(sessions, world.users["admin"])
    assert (admin.role, admin.status) == (Role.ORG_ADMIN, UserStatus.ACTIVE)


@pytest.mark.parametrize("ending", ENDINGS)
def test_with_another_active_admin_it_is_made(
    client, session, sessions, world: World, ending: str
) -> None:
    headers = _platform_admin(session, world)
    org = session.get_one(Organisation, world.org_a)
    f.make_user(session, org, role=Role.ORG_ADMIN, email="deputy@acme.test")
    session.commit()
    method, path, body = ENDINGS[ending]
    response = call(
        client, method, f"/api/v1/users/{world.users['admin']}{path}", json=body, headers=headers
    )
    assert response.status_code == 200, response.get_json()
    admin = _person(sessions, world.users["admin"])
    if ending == "passed_end_date":
        assert admin.access_ends_at is not None
    else:
        assert (admin.role, admin.status) != (Role.ORG_ADMIN, UserStatus.ACTIVE)
    with sessions() as fresh:
        assert not fresh.scalars(
            select(AuditEvent).where(AuditEvent.action == "organisation.no_active_admin")
        ).all()


def test_a_revoked_admin_does_not_count(client, session, world: World) -> None:
    """Another ORG_ADMIN who is REVOKED keeps nobody in: still refused."""
    headers = _platform_admin(session, world)
    org = session.get_one(Organisation, world.org_a)
    f.make_user(
        session, org, role=Role.ORG_ADMIN, email="gone@acme.test", status=UserStatus.REVOKED
    )
    session.commit()
    response = call(client, "POST", f"/api/v1/users/{world.users['admin']}/revoke", headers=headers)
    assert_problem(response, 409, detail="last active Organisation Admin")
